//! The event-log benchmark. Every figure is printed beside a baseline measured in the same run
//! against the same server: raw JetStream publishes of the same size to the same number of
//! streams, at the same concurrency, each awaiting its acknowledgement.
//!
//! Two servers are measured: one that syncs every write to disk (the durable setting the product
//! requires on a single node) and one with nats-server's default lazy sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{
    EventEnvelope, EventLog, Expected, LogConfig, LogContext, NatsConfig, NewCommit, Payload, Projection, Record,
};
use yy_proto::conversation::v1::MessagePosted;
use yy_testkit::{NatsServer, Sync};

use crate::measure::{Measured, run_workers_indexed};

/// Sizes of the event-log benchmark.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Commits per round of each append measurement on the durable server.
    #[arg(long, default_value_t = 20_000)]
    durable_ops: u64,
    /// Commits per round of each append measurement on the lazily syncing server.
    #[arg(long, default_value_t = 60_000)]
    lazy_ops: u64,
    /// Rounds of each measurement, alternating baseline and appends.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Appends (and baseline publishes) in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: u64,
    /// Partitions of the log (and streams of the baseline).
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Aggregates the appends are spread over.
    #[arg(long, default_value_t = 4096)]
    aggregates: u64,
    /// Events replayed in the replay measurement (written beforehand on the lazy server).
    #[arg(long, default_value_t = 500_000)]
    replay_events: u64,
}

/// The size of one event's text, so that a stored commit is about 256 bytes of payload.
const EVENT_TEXT: usize = 160;

/// Runs the event-log benchmark and prints its report.
pub async fn run(args: Args) {
    println!("# Event-log benchmark\n");
    println!(
        "{} partitions, {} appends in flight, {} aggregates, ~256-byte commits, {} CPU cores.\n",
        args.partitions,
        args.concurrency,
        args.aggregates,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (label, sync, ops) in [
        ("durable: sync_interval always", Sync::Always, args.durable_ops),
        ("server default (lazy sync)", Sync::Default, args.lazy_ops),
    ] {
        let server = NatsServer::start_with(sync);
        let log = open(&server, args.partitions).await;
        println!("## {label}\n");
        println!("| measurement | ops | ops/s | ratio to baseline | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|---|");
        // Alternating rounds, so that warm-up and disk state weigh on both sides alike.
        raw_publish(&log, args.partitions, args.concurrency, ops / 10, 0).await;
        let (mut baseline, mut appended) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            baseline.push(raw_publish(&log, args.partitions, args.concurrency, ops, round + 1).await);
            appended.push(appends(&log, &args, ops, &format!("r{round}_")).await);
        }
        let (baseline, appended) = (Measured::combine(baseline), Measured::combine(appended));
        println!("{}", baseline.line("raw JetStream publish (baseline)", None));
        println!(
            "{}",
            appended.line(
                "append, expected-sequence check, many aggregates",
                Some(baseline.rate())
            )
        );
        let ratio = appended.rate() / baseline.rate();
        println!(
            "\nappends reach {:.0}% of the raw publish rate (goal: at least 60%: {})",
            ratio * 100.0,
            if ratio >= 0.6 { "met" } else { "NOT met" }
        );
        println!();
        if sync == Sync::Default {
            replay(&log, &args).await;
        }
    }
}

pub async fn open(server: &NatsServer, partitions: u32) -> EventLog {
    let nats = NatsConfig {
        url: server.url(),
        monitor_url: Some(server.monitor_url()),
        ..NatsConfig::default()
    };
    let config = LogConfig {
        partitions,
        accept_unsafe_durability: true,
        ..LogConfig::default()
    };
    let log = EventLog::connect(&nats, config, "yy-bench").await.expect("connect");
    log.provision(LogContext::CONV).await.expect("provision");
    log
}

/// The baseline: plain JetStream publishes of the same size, spread over the same number of
/// streams, `concurrency` in flight, each awaiting its acknowledgement.
pub async fn raw_publish(log: &EventLog, partitions: u32, concurrency: u64, ops: u64, round: u64) -> Measured {
    // The same connection and the same streams the appends use, so that only what the event log
    // adds is compared.
    let js = jetstream::new(log.client().clone());
    let payload = bytes::Bytes::from(vec![b'x'; 256]);
    let counter = Arc::new(AtomicU64::new(0));
    let partitions = u64::from(partitions);
    run_workers_indexed(concurrency, ops, counter, move |worker, i| {
        let (js, payload) = (js.clone(), payload.clone());
        async move {
            // Workers start on different partitions, as hashed aggregates do, rather than in step.
            let subject =
                LogContext::CONV.subject(((worker + i) % partitions) as u32, "raw", &format!("r{round}w{worker}"));
            js.publish(subject, payload).await.expect("publish").await.expect("ack");
        }
    })
    .await
}

/// Appends through the event log: a protobuf commit with one event, a message id, and the
/// expected last sequence of its aggregate, spread over many aggregates and every partition.
async fn appends(log: &EventLog, args: &Args, ops: u64, prefix: &str) -> Measured {
    // Each aggregate's last sequence, so every append checks concurrency for real; an aggregate
    // is only ever used by one worker, so the expectation always holds.
    let workers = args.concurrency;
    let per_worker = args.aggregates.div_ceil(workers).max(1);
    let sequences: Arc<Vec<AtomicU64>> = Arc::new((0..workers * per_worker).map(|_| AtomicU64::new(0)).collect());
    let counter = Arc::new(AtomicU64::new(0));
    let text = "x".repeat(EVENT_TEXT);
    let prefix = prefix.to_owned();
    let log = log.clone();
    run_workers_indexed(workers, ops, counter, move |worker, i| {
        let (log, sequences, text, prefix) = (log.clone(), sequences.clone(), text.clone(), prefix.clone());
        async move {
            let slot = (worker * per_worker + i % per_worker) as usize;
            let aggregate = format!("conv_{prefix}{slot}");
            let last = sequences[slot].load(Ordering::Relaxed);
            let expected = if last == 0 {
                Expected::NoStream
            } else {
                Expected::LastSequence(last)
            };
            let appended = log.append(commit(&aggregate, &text), expected).await.expect("append");
            sequences[slot].store(appended.sequence, Ordering::Relaxed);
        }
    })
    .await
}

fn commit(aggregate: &str, text: &str) -> NewCommit {
    let id = uuid::Uuid::now_v7().to_string();
    NewCommit {
        context: LogContext::CONV,
        tenant_id: "bench".into(),
        aggregate_id: aggregate.into(),
        command_id: id.clone(),
        events: vec![EventEnvelope {
            event_id: id,
            tenant_id: "bench".into(),
            aggregate_type: "conversation".into(),
            aggregate_id: aggregate.into(),
            schema_version: 1,
            payload: Some(Payload::MessagePosted(MessagePosted {
                message_id: "msg_bench".into(),
                role: "customer".into(),
                text: text.into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
        trace: None,
    }
}

/// Counts what it replays, so the replay cannot be optimised away.
#[derive(Default)]
struct EventCount(u64);

impl Projection for EventCount {
    fn apply(&mut self, record: &Record) {
        self.0 += record.commit.events.len() as u64;
    }
}

/// Replays `replay_events` one-event commits of ~256 bytes into a projection, from all
/// partitions at once, until caught up.
async fn replay(log: &EventLog, args: &Args) {
    let context = LogContext::new("replay");
    log.provision(context).await.expect("provision");
    let client = log.client().clone();
    let js = jetstream::new(client);
    // Written through the raw client with pipelined acks: only the reading is measured here.
    let text = "x".repeat(EVENT_TEXT);
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..args.replay_events {
        let aggregate = format!("conv_{}", i % args.aggregates);
        let partition = yy_eventlog::partition_of(&aggregate, args.partitions);
        let mut commit = commit(&aggregate, &text);
        let encoded = prost_encode(yy_eventlog::Commit {
            command_id: commit.command_id.clone(),
            events: std::mem::take(&mut commit.events),
        });
        let ack = js
            .publish(context.subject(partition, "bench", &aggregate), encoded.into())
            .await
            .expect("publish");
        pending.push(ack.into_future());
        if pending.len() >= 4096 {
            use futures::StreamExt as _;
            pending.next().await.expect("pending").expect("ack");
        }
    }
    {
        use futures::StreamExt as _;
        while let Some(ack) = pending.next().await {
            ack.expect("ack");
        }
    }
    let start = Instant::now();
    let follower = log
        .follow(context, EventCount::default(), CancellationToken::new())
        .await
        .expect("follow");
    follower.caught_up().await;
    let elapsed = start.elapsed();
    let replayed = follower.read().state.0;
    assert_eq!(replayed, args.replay_events, "replay must see every event");
    println!("| measurement | events | events/s | seconds |");
    println!("|---|---|---|---|");
    let rate = replayed as f64 / elapsed.as_secs_f64();
    println!(
        "| replay into a projection, {} partitions in parallel | {replayed} | {rate:.0} | {:.2} |\n",
        args.partitions,
        elapsed.as_secs_f64()
    );
    println!(
        "replay: {rate:.0} events/s (goal: at least 200,000: {})\n",
        if rate >= 200_000.0 { "met" } else { "NOT met" }
    );
}

fn prost_encode(commit: yy_eventlog::Commit) -> Vec<u8> {
    prost::Message::encode_to_vec(&commit)
}
