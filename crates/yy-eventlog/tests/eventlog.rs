//! The event log against a real nats-server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{
    AppendError, Appended, ConsumerSpec, Delivery, EventEnvelope, EventLog, Expected, LogConfig, LogContext, LogError,
    NatsConfig, NewCommit, Outcome, Payload, Projection, Record, Snapshottable, StorageKind, TraceContext,
};
use yy_proto::conversation::v1::MessagePosted;
use yy_testkit::{NatsCluster, NatsServer, Sync};

const CONV: LogContext = LogContext::CONV;

fn config(partitions: u32) -> LogConfig {
    LogConfig {
        partitions,
        ..LogConfig::default()
    }
}

async fn open(server: &NatsServer, config: LogConfig) -> EventLog {
    let nats = NatsConfig {
        url: server.url(),
        monitor_url: Some(server.monitor_url()),
        ..NatsConfig::default()
    };
    EventLog::connect(&nats, config, "eventlog-test")
        .await
        .expect("connect")
}

async fn provisioned(server: &NatsServer, partitions: u32) -> EventLog {
    let log = open(server, config(partitions)).await;
    log.provision(CONV).await.expect("provision");
    log
}

fn commit(tenant: &str, aggregate: &str, command_id: &str) -> NewCommit {
    NewCommit {
        context: CONV,
        tenant_id: tenant.into(),
        aggregate_id: aggregate.into(),
        command_id: command_id.into(),
        events: vec![EventEnvelope {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.into(),
            aggregate_type: "conversation".into(),
            aggregate_id: aggregate.into(),
            schema_version: 1,
            payload: Some(Payload::MessagePosted(MessagePosted {
                message_id: format!("msg_{command_id}"),
                role: "customer".into(),
                text: command_id.into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
        trace: None,
    }
}

/// Command ids per aggregate, in applied order.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct History(BTreeMap<String, Vec<String>>);

impl Projection for History {
    fn apply(&mut self, record: &Record) {
        let key = format!("{}/{}", record.tenant_id, record.aggregate_id);
        self.0.entry(key).or_default().push(record.commit.command_id.clone());
    }
}

impl Snapshottable for History {
    const STATE_VERSION: u32 = 1;
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("encode")
    }
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

async fn replayed(log: &EventLog) -> (History, u64) {
    let follower = log
        .follow(CONV, History::default(), CancellationToken::new())
        .await
        .expect("follow");
    tokio::time::timeout(Duration::from_secs(30), follower.caught_up())
        .await
        .expect("catch up");
    let applied = follower.read();
    (applied.state.clone(), applied.commits)
}

#[tokio::test]
async fn of_two_concurrent_appends_with_the_same_expectation_exactly_one_wins() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    let first = log
        .append(commit("t1", "conv_a", "c0"), Expected::NoStream)
        .await
        .expect("first");

    for round in 0..10 {
        let current = log.load(CONV, "t1", "conv_a").await.expect("load").1;
        let (a, b) = tokio::join!(
            log.append(
                commit("t1", "conv_a", &format!("a{round}")),
                Expected::LastSequence(current)
            ),
            log.append(
                commit("t1", "conv_a", &format!("b{round}")),
                Expected::LastSequence(current)
            ),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        assert!(won.sequence > current);
        assert!(
            matches!(lost, AppendError::Conflict { ref aggregate_id, expected } if aggregate_id == "conv_a" && expected == current),
            "{lost:?}"
        );
    }
    let err = log
        .append(commit("t1", "conv_a", "late"), Expected::LastSequence(first.sequence))
        .await;
    assert!(matches!(err, Err(AppendError::Conflict { .. })));
    let err = log.append(commit("t1", "conv_a", "again"), Expected::NoStream).await;
    assert!(matches!(err, Err(AppendError::Conflict { .. })));
    assert_eq!(log.load(CONV, "t1", "conv_a").await.expect("load").0.len(), 11);
}

#[tokio::test]
async fn a_retried_command_is_stored_once() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    let first = log
        .append(commit("t1", "conv_r", "cmd-1"), Expected::NoStream)
        .await
        .expect("append");
    assert!(!first.duplicate);
    // The retry carries the expectation of the first attempt, which no longer holds: it must still
    // be recognised as the same command rather than reported as a conflict.
    let retry = log
        .append(commit("t1", "conv_r", "cmd-1"), Expected::NoStream)
        .await
        .expect("retry");
    assert_eq!(
        retry,
        Appended {
            duplicate: true,
            ..first
        }
    );
    let retry_any = log
        .append(commit("t1", "conv_r", "cmd-1"), Expected::Any)
        .await
        .expect("retry");
    assert!(retry_any.duplicate);
    // The same command id on another tenant's aggregate is another command.
    let other = log
        .append(commit("t2", "conv_r", "cmd-1"), Expected::NoStream)
        .await
        .expect("other tenant");
    assert!(!other.duplicate);

    let (records, last) = log.load(CONV, "t1", "conv_r").await.expect("load");
    assert_eq!(records.len(), 1);
    assert_eq!(last, first.sequence);
}

#[tokio::test]
async fn replay_order_equals_append_order_within_an_aggregate() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Interleave several aggregates, with appends to different aggregates in flight together.
    for i in 0..40 {
        let mut batch = Vec::new();
        for agg in 0..5 {
            let aggregate = format!("conv_{agg}");
            let id = format!("{aggregate}-{i}");
            expected.entry(format!("t1/{aggregate}")).or_default().push(id.clone());
            batch.push(log.append(commit("t1", &aggregate, &id), Expected::Any));
        }
        for result in futures::future::join_all(batch).await {
            result.expect("append");
        }
    }
    for agg in 0..5 {
        let (records, _) = log.load(CONV, "t1", &format!("conv_{agg}")).await.expect("load");
        let ids: Vec<String> = records.iter().map(|r| r.commit.command_id.clone()).collect();
        assert_eq!(ids, expected[&format!("t1/conv_{agg}")]);
        assert!(records.windows(2).all(|w| w[0].sequence < w[1].sequence));
    }
    let (history, commits) = replayed(&log).await;
    assert_eq!(history.0, expected);
    assert_eq!(commits, 200);
}

#[tokio::test]
async fn a_projection_rebuilt_from_the_log_equals_the_live_one() {
    let server = NatsServer::start();
    let log = provisioned(&server, 8).await;
    for i in 0..50 {
        log.append(
            commit("t1", &format!("conv_{}", i % 7), &format!("pre-{i}")),
            Expected::Any,
        )
        .await
        .expect("append");
    }
    let shutdown = CancellationToken::new();
    let live = log
        .follow(CONV, History::default(), shutdown.clone())
        .await
        .expect("follow");
    live.caught_up().await;
    // Appends while the live projection follows the tail.
    let mut last = None;
    for i in 0..150 {
        let tenant = if i % 2 == 0 { "t1" } else { "t2" };
        last = Some(
            log.append(
                commit(tenant, &format!("conv_{}", i % 11), &format!("live-{i}")),
                Expected::Any,
            )
            .await
            .expect("append"),
        );
    }
    // Read-your-writes: waiting for the last append's position makes the live view current.
    let last = last.expect("appended");
    tokio::time::timeout(Duration::from_secs(10), live.applied(last.partition, last.sequence))
        .await
        .expect("applied");
    for partition in 0..8 {
        let sequence = log_tail(&log, partition).await;
        tokio::time::timeout(Duration::from_secs(10), live.applied(partition, sequence))
            .await
            .expect("applied");
    }
    let (rebuilt, commits) = replayed(&log).await;
    assert_eq!(live.read().state, rebuilt);
    assert_eq!(commits, 200);
    shutdown.cancel();
}

async fn log_tail(log: &EventLog, partition: u32) -> u64 {
    // The tail as the projection sees it: the highest sequence of any record in the partition.
    let follower = log
        .follow(CONV, History::default(), CancellationToken::new())
        .await
        .expect("follow");
    follower.caught_up().await;
    follower.read().sequences[partition as usize]
}

#[tokio::test]
async fn snapshot_plus_tail_equals_a_full_replay() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    for i in 0..100 {
        log.append(
            commit("t1", &format!("conv_{}", i % 9), &format!("before-{i}")),
            Expected::Any,
        )
        .await
        .expect("append");
    }
    let shutdown = CancellationToken::new();
    let follower = log
        .follow(CONV, History::default(), shutdown.clone())
        .await
        .expect("follow");
    follower.caught_up().await;
    let covered = log.save_snapshot("test.conv", &follower).await.expect("save");
    assert_eq!(covered.iter().filter(|s| **s > 0).count(), 4, "{covered:?}");
    shutdown.cancel();

    for i in 0..30 {
        log.append(
            commit("t1", &format!("conv_{}", i % 13), &format!("after-{i}")),
            Expected::Any,
        )
        .await
        .expect("append");
    }
    let restored = log
        .follow_from_snapshot("test.conv", CONV, History::default(), CancellationToken::new())
        .await
        .expect("restore");
    restored.caught_up().await;
    let (full, _) = replayed(&log).await;
    {
        let restored = restored.read();
        assert_eq!(restored.state, full);
        // Only the tail was read from the log.
        assert_eq!(restored.commits, 30);
    }

    // A snapshot taken with another partition count is ignored, not misapplied.
    let other_layout = open(&server, config(8)).await;
    assert!(
        other_layout
            .load_snapshot::<History>("test.conv", CONV)
            .await
            .expect("load")
            .is_none()
    );
}

#[tokio::test]
async fn acknowledged_commits_survive_a_sigkill_and_appends_continue() {
    let mut server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let stop = CancellationToken::new();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (log, acknowledged, stop) = (log.clone(), acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let aggregate = format!("conv_w{writer}_{}", i % 5);
                let id = format!("w{writer}-{i}");
                if log.append(commit("t1", &aggregate, &id), Expected::Any).await.is_ok() {
                    acknowledged.lock().expect("lock").push((aggregate, id));
                }
                i += 1;
            }
        }));
    }
    while acknowledged.lock().expect("lock").len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    // The same client reconnects on its own; appends succeed again.
    let resumed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match log
                .append(commit("t1", "conv_after", "after-restart"), Expected::Any)
                .await
            {
                Ok(appended) => return appended,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("appends resume after the restart");
    assert!(resumed.sequence > 0);
    stop.cancel();
    for writer in writers {
        writer.await.expect("writer");
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    let (history, _) = replayed(&log).await;
    let stored: HashSet<(String, String)> = history
        .0
        .iter()
        .flat_map(|(key, ids)| {
            let aggregate = key.trim_start_matches("t1/").to_owned();
            ids.iter().map(move |id| (aggregate.clone(), id.clone()))
        })
        .collect();
    let missing: Vec<_> = acknowledged.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged commits lost: {missing:?}",
        missing.len()
    );
    assert!(stored.contains(&("conv_after".to_owned(), "after-restart".to_owned())));
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_after_n_deliveries() {
    let server = NatsServer::start();
    let log = provisioned(&server, 2).await;
    log.append(commit("t1", "conv_ok", "good"), Expected::Any)
        .await
        .expect("append");
    let poison = log
        .append(commit("t1", "conv_bad", "poison"), Expected::Any)
        .await
        .expect("append");
    log.append(commit("t1", "conv_ok", "good-2"), Expected::Any)
        .await
        .expect("append");

    let attempts = Arc::new(AtomicU32::new(0));
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let handler = {
        let (attempts, done) = (attempts.clone(), done.clone());
        move |delivery: Delivery| {
            let (attempts, done) = (attempts.clone(), done.clone());
            async move {
                if delivery.record.commit.command_id == "poison" {
                    let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    assert_eq!(delivery.attempt, n);
                    Outcome::Retry {
                        after: Duration::from_millis(20),
                        reason: "receiver answered 500".into(),
                    }
                } else {
                    done.lock()
                        .expect("lock")
                        .push(delivery.record.commit.command_id.clone());
                    Outcome::Done
                }
            }
        }
    };
    let spec = ConsumerSpec {
        name: "test-sink".into(),
        context: CONV,
        max_deliveries: 3,
        ack_wait: Duration::from_secs(5),
    };
    let consumer = log.consume(spec, handler, shutdown.clone()).await.expect("consume");

    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let dlq = js
        .get_stream(yy_eventlog::DEAD_LETTER_STREAM)
        .await
        .expect("dlq stream");
    let letter = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(message) = dlq.get_last_raw_message_by_subject("yy.dlq.test-sink.conv.>").await {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a dead letter");
    let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Yy-Dlq-Sequence"), Some(poison.sequence.to_string()));
    assert_eq!(header("Yy-Dlq-Deliveries").as_deref(), Some("3"));
    assert!(header("Yy-Dlq-Reason").is_some_and(|r| r.contains("receiver answered 500")));
    let original = yy_eventlog::Commit::decode_from(&letter.payload);
    assert_eq!(original.command_id, "poison");

    // Nothing more arrives for it, and the healthy commits were handled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let mut handled = done.lock().expect("lock").clone();
    handled.sort();
    assert_eq!(handled, ["good", "good-2"]);
    shutdown.cancel();
    consumer.stopped().await;
}

trait DecodeFrom {
    fn decode_from(bytes: &[u8]) -> Self;
}

impl DecodeFrom for yy_eventlog::Commit {
    fn decode_from(bytes: &[u8]) -> Self {
        prost::Message::decode(bytes).expect("a commit")
    }
}

#[tokio::test]
async fn the_durability_check_refuses_setups_that_can_lose_acknowledged_writes() {
    // A single replica on a server with lazy sync.
    let lazy = NatsServer::start_with(Sync::Default);
    let log = provisioned(&lazy, 2).await;
    let error = log.check_durability(&[CONV]).await.expect_err("unsafe");
    assert!(
        matches!(error, LogError::Unsafe(ref m) if m.contains("does not sync every write")),
        "{error}"
    );
    // ...started anyway when config says so, with the problems reported.
    let accepting = open(
        &lazy,
        LogConfig {
            partitions: 2,
            accept_unsafe_durability: true,
            ..LogConfig::default()
        },
    )
    .await;
    let report = accepting.check_durability(&[CONV]).await.expect("accepted");
    assert_eq!(report.problems.len(), 2);

    // The same single replica on a server that syncs every write is safe...
    let synced = NatsServer::start();
    let log = provisioned(&synced, 2).await;
    let report = log.check_durability(&[CONV]).await.expect("safe");
    assert_eq!(report.server.sync_always, Some(true));
    assert!(report.problems.is_empty());
    // ...but not when the sync setting cannot be verified,
    let blind = EventLog::connect(
        &NatsConfig {
            url: synced.url(),
            ..NatsConfig::default()
        },
        config(2),
        "blind",
    )
    .await
    .expect("connect");
    let error = blind.check_durability(&[CONV]).await.expect_err("unknown sync");
    assert!(error.to_string().contains("monitor_url"), "{error}");
    // ...nor with memory storage.
    let memory = open(
        &synced,
        LogConfig {
            partitions: 2,
            storage: StorageKind::Memory,
            ..LogConfig::default()
        },
    )
    .await;
    memory.provision(LogContext::new("scratch")).await.expect("provision");
    let error = memory
        .check_durability(&[LogContext::new("scratch")])
        .await
        .expect_err("memory");
    assert!(error.to_string().contains("memory storage"), "{error}");
}

#[tokio::test]
async fn three_replicas_in_a_cluster_pass_the_durability_check() {
    let cluster = NatsCluster::start();
    let nats = NatsConfig {
        url: cluster.urls(),
        ..NatsConfig::default()
    };
    let log = EventLog::connect(
        &nats,
        LogConfig {
            partitions: 2,
            replicas: 3,
            ..LogConfig::default()
        },
        "cluster",
    )
    .await
    .expect("connect");
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Err(error) = log.provision(CONV).await {
            eprintln!("cluster not ready: {error}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("provision on the cluster");
    let report = log
        .check_durability(&[CONV])
        .await
        .expect("safe without knowing the sync setting");
    assert!(report.streams.iter().all(|s| s.replicas == 3));
    let appended = log
        .append(commit("t1", "conv_c", "c1"), Expected::NoStream)
        .await
        .expect("append");
    assert_eq!(log.load(CONV, "t1", "conv_c").await.expect("load").1, appended.sequence);
}

#[tokio::test]
async fn provisioning_is_idempotent_and_refuses_a_partition_count_change() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    log.append(commit("t1", "conv_p", "p1"), Expected::Any)
        .await
        .expect("append");
    log.provision(CONV).await.expect("again");
    assert_eq!(log.load(CONV, "t1", "conv_p").await.expect("load").0.len(), 1);

    for partitions in [2, 8] {
        let error = open(&server, config(partitions))
            .await
            .provision(CONV)
            .await
            .expect_err("refused");
        assert!(
            matches!(error, LogError::PartitionCountMismatch { existing: 4, configured, .. } if configured == partitions),
            "{error}"
        );
    }
    // Another context is independent.
    open(&server, config(8))
        .await
        .provision(LogContext::KB)
        .await
        .expect("kb");
}

#[tokio::test]
async fn ids_that_cannot_be_subject_tokens_are_refused() {
    let server = NatsServer::start();
    let log = provisioned(&server, 2).await;
    for (tenant, aggregate) in [
        ("t.1", "conv_a"),
        ("t1", "conv.a"),
        ("t1", "*"),
        ("", "conv_a"),
        ("t1", "conv a"),
    ] {
        let error = log
            .append(commit(tenant, aggregate, "c"), Expected::Any)
            .await
            .expect_err("invalid");
        assert!(matches!(error, AppendError::Log(LogError::InvalidId { .. })), "{error}");
    }
    let mut empty = commit("t1", "conv_a", "c");
    empty.events.clear();
    assert!(matches!(
        log.append(empty, Expected::Any).await,
        Err(AppendError::Empty)
    ));
}

#[tokio::test]
async fn trace_context_travels_with_the_commit() {
    let server = NatsServer::start();
    let log = provisioned(&server, 2).await;
    let trace =
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Some("yy=1")).expect("trace");
    let mut traced = commit("t1", "conv_t", "t1");
    traced.trace = Some(trace.clone());
    log.append(traced, Expected::Any).await.expect("append");
    let (records, _) = log.load(CONV, "t1", "conv_t").await.expect("load");
    assert_eq!(records[0].trace.as_ref(), Some(&trace));
    assert_eq!(records[0].commit.events[0].traceparent, trace.traceparent());

    // Without an explicit context, the current span's is taken.
    let (records, _) = {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let span = tracing::info_span!("request");
        let expected = span.in_scope(TraceContext::current).expect("a current trace");
        {
            use tracing::Instrument as _;
            log.append(commit("t1", "conv_u", "u1"), Expected::Any)
                .instrument(span)
                .await
                .expect("append");
        }
        let loaded = log.load(CONV, "t1", "conv_u").await.expect("load");
        assert_eq!(
            loaded.0[0].trace.as_ref().map(TraceContext::trace_id),
            Some(expected.trace_id())
        );
        loaded
    };
    assert!(!records[0].commit.events[0].traceparent.is_empty());
}

#[tokio::test]
async fn a_follower_reports_caught_up_only_after_replaying_the_existing_log() {
    let server = NatsServer::start();
    let log = provisioned(&server, 4).await;
    let mut pending = futures::stream::iter((0..2000).map(|i| {
        let log = log.clone();
        async move {
            log.append(
                commit("t1", &format!("conv_{}", i % 50), &format!("c{i}")),
                Expected::Any,
            )
            .await
        }
    }))
    .buffer_unordered(64);
    while let Some(result) = pending.next().await {
        result.expect("append");
    }
    let follower = log
        .follow(CONV, History::default(), CancellationToken::new())
        .await
        .expect("follow");
    tokio::time::timeout(Duration::from_secs(30), follower.caught_up())
        .await
        .expect("caught up");
    {
        let applied = follower.read();
        assert_eq!(applied.commits, 2000);
        assert_eq!(applied.state.0.values().map(Vec::len).sum::<usize>(), 2000);

        // An empty context is caught up at once.
    }
    let empty = open(&server, config(4)).await;
    empty.provision(LogContext::KB).await.expect("provision");
    let follower = empty
        .follow(LogContext::KB, History::default(), CancellationToken::new())
        .await
        .expect("follow");
    assert!(follower.is_caught_up());
}

#[tokio::test]
async fn identity_and_audit_logs_are_never_expired() {
    let server = NatsServer::start();
    let log = open(
        &server,
        LogConfig {
            partitions: 2,
            max_age_secs: 3600,
            ..LogConfig::default()
        },
    )
    .await;
    for context in [CONV, LogContext::IAM, LogContext::AUDIT] {
        log.provision(context).await.expect("provision");
    }
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let max_age = |stream: String| {
        let js = js.clone();
        async move {
            js.get_stream(stream)
                .await
                .expect("stream")
                .cached_info()
                .config
                .max_age
        }
    };
    assert_eq!(max_age(CONV.stream(0)).await, Duration::from_secs(3600));
    assert_eq!(max_age(LogContext::IAM.stream(1)).await, Duration::ZERO);
    assert_eq!(max_age(LogContext::AUDIT.stream(0)).await, Duration::ZERO);
}

/// Every message text, in order: a projection whose state grows past one NATS message.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Texts(Vec<String>);

impl Projection for Texts {
    fn apply(&mut self, record: &Record) {
        for event in &record.commit.events {
            if let Some(Payload::MessagePosted(posted)) = &event.payload {
                self.0.push(posted.text.clone());
            }
        }
    }
}

impl Snapshottable for Texts {
    const STATE_VERSION: u32 = 1;
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("encode")
    }
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

fn big_commit(aggregate: &str, i: usize) -> NewCommit {
    let mut commit = commit("t1", aggregate, &format!("big-{i}"));
    if let Some(Payload::MessagePosted(posted)) = &mut commit.events[0].payload {
        // Distinct, incompressible-looking text of about 64 KiB.
        posted.text = (0..8_000)
            .map(|n| format!("{:07x}", (n * 7919 + i * 104_729) % 0xfff_ffff))
            .collect();
    }
    commit
}

#[tokio::test]
async fn a_snapshot_larger_than_a_message_is_stored_in_chunks_and_restored_whole() {
    let server = NatsServer::start();
    let log = provisioned(&server, 2).await;
    for i in 0..40 {
        log.append(big_commit(&format!("conv_{}", i % 3), i), Expected::Any)
            .await
            .expect("append");
    }
    let shutdown = CancellationToken::new();
    let follower = log
        .follow(CONV, Texts::default(), shutdown.clone())
        .await
        .expect("follow");
    follower.caught_up().await;
    assert!(
        follower.read().state.encode().len() > 2 * 1024 * 1024,
        "the state must outgrow one message"
    );
    log.save_snapshot("test.texts", &follower)
        .await
        .expect("a chunked save");

    for i in 40..43 {
        log.append(big_commit("conv_9", i), Expected::Any)
            .await
            .expect("append");
    }
    let restored = log
        .follow_from_snapshot("test.texts", CONV, Texts::default(), CancellationToken::new())
        .await
        .expect("restore");
    restored.caught_up().await;
    let full = log
        .follow(CONV, Texts::default(), CancellationToken::new())
        .await
        .expect("follow");
    full.caught_up().await;
    {
        let restored = restored.read();
        let mut restored_texts = restored.state.0.clone();
        let mut full_texts = full.read().state.0.clone();
        // Partitions replay in parallel, so compare as sets of texts; each is unique.
        restored_texts.sort();
        full_texts.sort();
        assert_eq!(restored_texts, full_texts);
        assert_eq!(restored.commits, 3, "only the tail after the snapshot was read");
    }

    // A newer snapshot replaces the older one's chunks.
    follower.caught_up().await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while follower.read().commits < 43 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the live follower sees the tail");
    log.save_snapshot("test.texts", &follower)
        .await
        .expect("a second chunked save");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let bucket = async_nats::jetstream::new(client)
        .get_key_value(yy_eventlog::SNAPSHOT_BUCKET)
        .await
        .expect("bucket");
    let keys: Vec<String> = futures::TryStreamExt::try_collect(bucket.keys().await.expect("keys"))
        .await
        .expect("keys");
    let generations: HashSet<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("test.texts.")?.split('.').next())
        .collect();
    assert_eq!(generations.len(), 1, "{keys:?}");
    shutdown.cancel();
}
