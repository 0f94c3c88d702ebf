//! Live tails against a real nats-server: filters, starting points and resuming from cursors.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use yy_eventlog::{
    EventEnvelope, EventLog, Expected, LogConfig, LogContext, NatsConfig, NewCommit, Payload, Record, Tail, TailFilter,
    TailPosition, TailStart, partition_of,
};
use yy_proto::conversation::v1::MessagePosted;
use yy_testkit::NatsServer;

const CONV: LogContext = LogContext::CONV;
const PARTITIONS: u32 = 4;

async fn provisioned(server: &NatsServer) -> EventLog {
    let nats = NatsConfig {
        url: server.url(),
        monitor_url: Some(server.monitor_url()),
        ..NatsConfig::default()
    };
    let config = LogConfig {
        partitions: PARTITIONS,
        ..LogConfig::default()
    };
    let log = EventLog::connect(&nats, config, "tail-test").await.expect("connect");
    log.provision(CONV).await.expect("provision");
    log
}

fn envelope(tenant: &str, aggregate: &str, text: &str) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.into(),
        aggregate_type: "conversation".into(),
        aggregate_id: aggregate.into(),
        schema_version: 1,
        payload: Some(Payload::MessagePosted(MessagePosted {
            message_id: format!("msg_{text}"),
            role: "customer".into(),
            text: text.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Appends one commit of one event per text; the command id is the texts joined.
async fn append(log: &EventLog, tenant: &str, aggregate: &str, texts: &[&str]) -> u64 {
    let commit = NewCommit {
        context: CONV,
        tenant_id: tenant.into(),
        aggregate_id: aggregate.into(),
        command_id: texts.join("+"),
        events: texts.iter().map(|t| envelope(tenant, aggregate, t)).collect(),
        trace: None,
    };
    log.append(commit, Expected::Any).await.expect("append").sequence
}

/// The next record, failing the test after 10 s.
async fn next(tail: &mut Tail) -> Record {
    tokio::time::timeout(Duration::from_secs(10), tail.next())
        .await
        .expect("a record within 10 s")
        .expect("the tail goes on")
        .expect("a decodable record")
}

/// Asserts that nothing more arrives for a while.
async fn quiet(tail: &mut Tail) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(700), tail.next()).await {
        panic!("unexpected record: {item:?}");
    }
}

fn command(record: &Record) -> &str {
    &record.commit.command_id
}

#[tokio::test]
async fn resuming_from_a_position_delivers_exactly_the_commits_after_it() {
    let server = NatsServer::start();
    let log = provisioned(&server).await;
    for i in 1..=5 {
        append(&log, "t1", "conv_a", &[&format!("a{i}")]).await;
        // Same partition or not, another aggregate never shows in conv_a's tail.
        append(&log, "t1", "conv_b", &[&format!("b{i}")]).await;
    }
    let filter = TailFilter::aggregate("t1", "conv_a");

    let mut all = log
        .tail(
            CONV,
            filter.clone(),
            TailStart::After(TailPosition::beginning(PARTITIONS)),
        )
        .await
        .expect("tail");
    let mut position = all.start().clone();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let record = next(&mut all).await;
        assert_eq!(record.aggregate_id, "conv_a");
        position = position.after(&record, record.commit.events.len());
        seen.push((command(&record).to_owned(), position.format(&filter)));
    }
    quiet(&mut all).await;
    let commands: Vec<_> = seen.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(commands, ["a1", "a2", "a3", "a4", "a5"]);

    // Resume after the third: exactly the fourth and fifth, then what is appended later.
    let cursor = &seen[2].1;
    let resumed_at = TailPosition::parse(cursor, &filter, PARTITIONS).expect("parse");
    let mut resumed = log
        .tail(CONV, filter.clone(), TailStart::After(resumed_at))
        .await
        .expect("resume");
    assert_eq!(command(&next(&mut resumed).await), "a4");
    assert_eq!(command(&next(&mut resumed).await), "a5");
    quiet(&mut resumed).await;
    append(&log, "t1", "conv_a", &["a6"]).await;
    assert_eq!(command(&next(&mut resumed).await), "a6");
    assert_eq!(command(&next(&mut all).await), "a6");

    // Resuming at the newest cursor delivers nothing old.
    let latest = TailPosition::parse(&seen[4].1, &filter, PARTITIONS).expect("parse");
    let mut at_end = log
        .tail(CONV, filter.clone(), TailStart::After(latest))
        .await
        .expect("tail");
    assert_eq!(command(&next(&mut at_end).await), "a6");
    quiet(&mut at_end).await;
}

#[tokio::test]
async fn a_cursor_in_the_middle_of_a_commit_resumes_with_the_rest_of_it() {
    let server = NatsServer::start();
    let log = provisioned(&server).await;
    let filter = TailFilter::aggregate("t1", "conv_a");
    append(&log, "t1", "conv_a", &["x", "y", "z"]).await;

    let mut tail = log
        .tail(
            CONV,
            filter.clone(),
            TailStart::After(TailPosition::beginning(PARTITIONS)),
        )
        .await
        .expect("tail");
    let record = next(&mut tail).await;
    let after_first = tail.start().after(&record, 1);
    let cursor = after_first.format(&filter);
    assert!(cursor.ends_with(":1"), "{cursor}");

    let mut resumed = log
        .tail(
            CONV,
            filter.clone(),
            TailStart::After(TailPosition::parse(&cursor, &filter, PARTITIONS).expect("parse")),
        )
        .await
        .expect("resume");
    let again = next(&mut resumed).await;
    assert_eq!(again.sequence, record.sequence);
    let position = TailPosition::parse(&cursor, &filter, PARTITIONS).expect("parse");
    let rest: Vec<_> = again.commit.events[position.covered(&again)..]
        .iter()
        .map(|e| match &e.payload {
            Some(Payload::MessagePosted(m)) => m.text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rest, ["y", "z"]);
    quiet(&mut resumed).await;
}

#[tokio::test]
async fn a_tenant_tail_has_every_aggregate_of_the_tenant_and_nothing_of_others() {
    let server = NatsServer::start();
    let log = provisioned(&server).await;
    // Aggregates spread over every partition.
    let aggregates: Vec<String> = (0..16).map(|i| format!("conv_{i}")).collect();
    let partitions: std::collections::BTreeSet<_> = aggregates.iter().map(|a| partition_of(a, PARTITIONS)).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize);
    append(&log, "t1", "conv_0", &["before"]).await;

    let filter = TailFilter::tenant("t1");
    let mut tail = log.tail(CONV, filter.clone(), TailStart::New).await.expect("tail");
    let start = tail.start().clone();
    assert_eq!(
        start.sequence(partition_of("conv_0", PARTITIONS)),
        1,
        "new-only starts at the current end"
    );
    for round in 0..3 {
        for aggregate in &aggregates {
            append(&log, "t2", aggregate, &[&format!("{aggregate}-{round}-other")]).await;
            append(&log, "t1", aggregate, &[&format!("{aggregate}-{round}")]).await;
        }
    }

    let mut per_aggregate: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut position = start;
    let mut halfway = None;
    for n in 0..aggregates.len() * 3 {
        let record = next(&mut tail).await;
        assert_eq!(record.tenant_id, "t1", "{record:?}");
        per_aggregate
            .entry(record.aggregate_id.clone())
            .or_default()
            .push(command(&record).to_owned());
        position = position.after(&record, 1);
        if n == 20 {
            halfway = Some((position.format(&filter), per_aggregate.clone()));
        }
    }
    quiet(&mut tail).await;
    for aggregate in &aggregates {
        let expected: Vec<String> = (0..3).map(|round| format!("{aggregate}-{round}")).collect();
        assert_eq!(per_aggregate[aggregate], expected, "in order per aggregate");
    }

    // Resuming a tenant-wide cursor delivers exactly what was not delivered before it.
    let (cursor, before) = halfway.expect("halfway");
    assert_eq!(cursor.split('.').count(), PARTITIONS as usize);
    let mut resumed = log
        .tail(
            CONV,
            filter.clone(),
            TailStart::After(TailPosition::parse(&cursor, &filter, PARTITIONS).expect("parse")),
        )
        .await
        .expect("resume");
    let mut after: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..aggregates.len() * 3 - 21 {
        let record = next(&mut resumed).await;
        assert_eq!(record.tenant_id, "t1");
        after
            .entry(record.aggregate_id.clone())
            .or_default()
            .push(command(&record).to_owned());
    }
    quiet(&mut resumed).await;
    for aggregate in &aggregates {
        let mut joined = before.get(aggregate).cloned().unwrap_or_default();
        joined.extend(after.get(aggregate).cloned().unwrap_or_default());
        assert_eq!(joined, per_aggregate[aggregate], "{aggregate}: no gap, no repeat");
    }
}

#[tokio::test]
async fn bad_ids_and_positions_are_refused_up_front() {
    let server = NatsServer::start();
    let log = provisioned(&server).await;
    assert!(log.tail(CONV, TailFilter::tenant("t.1"), TailStart::New).await.is_err());
    assert!(
        log.tail(CONV, TailFilter::aggregate("t1", "conv>"), TailStart::New)
            .await
            .is_err()
    );
    assert!(
        log.tail(
            CONV,
            TailFilter::tenant("t1"),
            TailStart::After(TailPosition::beginning(PARTITIONS + 1))
        )
        .await
        .is_err()
    );
    // A context that was never provisioned has no streams to read.
    assert!(
        log.tail(LogContext::TICKET, TailFilter::tenant("t1"), TailStart::New)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_tail_survives_a_server_restart() {
    let mut server = NatsServer::start();
    let log = provisioned(&server).await;
    let filter = TailFilter::aggregate("t1", "conv_a");
    append(&log, "t1", "conv_a", &["a1"]).await;
    let mut tail = log
        .tail(CONV, filter, TailStart::After(TailPosition::beginning(PARTITIONS)))
        .await
        .expect("tail");
    assert_eq!(command(&next(&mut tail).await), "a1");

    server.restart();
    // The client reconnects on its own; appends succeed once it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let commit = || NewCommit {
        context: CONV,
        tenant_id: "t1".into(),
        aggregate_id: "conv_a".into(),
        command_id: "a2".into(),
        events: vec![envelope("t1", "conv_a", "a2")],
        trace: None,
    };
    while let Err(error) = log.append(commit(), Expected::Any).await {
        assert!(std::time::Instant::now() < deadline, "append after restart: {error}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let record = tokio::time::timeout(Duration::from_secs(30), tail.next())
        .await
        .expect("a record after the restart")
        .expect("the tail goes on")
        .expect("decodable");
    assert_eq!(command(&record), "a2");
    quiet(&mut tail).await;
}
