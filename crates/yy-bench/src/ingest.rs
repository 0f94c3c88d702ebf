//! End-to-end message ingest: customers' messages posted over HTTP to the gateway, which
//! authenticates them and forwards them to the conversation service, which appends them durably
//! and answers once its read model has them. The load is open-loop: requests start on a fixed
//! schedule whether or not earlier ones have finished, and latency is measured from the scheduled
//! start, so a stall shows in the figures instead of slowing the load down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use yy_conversation::ConversationConfig;
use yy_gateway::GatewayConfig;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, Sync, spawn_service};

use crate::measure::{Measured, histogram};

/// Sizes of the ingest benchmark.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// The goal rate, in messages per second; the second latency run uses half of it.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// How long each open-loop run lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Conversations the messages are spread over.
    #[arg(long, default_value_t = 500)]
    conversations: usize,
    /// Partitions of the log.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Requests in flight at most; past it, a request is counted as late and not sent.
    #[arg(long, default_value_t = 4_096)]
    max_in_flight: u64,
}

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const TEXT: &str = "Hello, I would like to know where my order is. 你好，我的订单到哪里了？";

struct Cluster {
    gateway: RunningService<RunError>,
    conversation: RunningService<RunError>,
}

async fn start_cluster(nats: &NatsServer, partitions: u32) -> Cluster {
    fn common<X: Default>(nats: &NatsServer, partitions: u32) -> ServiceConfig<X> {
        let mut config = ServiceConfig::<X>::default();
        config.nats.url = nats.url();
        config.nats.monitor_url = Some(nats.monitor_url());
        config.eventlog.partitions = partitions;
        config
    }
    let conversation_config: ServiceConfig<ConversationConfig> = common(nats, partitions);
    let conversation = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_conversation::run(conversation_config, Listeners { http, grpc }, shutdown)
    })
    .await;
    let mut gateway_config: ServiceConfig<GatewayConfig> = common(nats, partitions);
    gateway_config.extra.auth.admin_token = Secret::new(ADMIN_TOKEN);
    gateway_config.extra.auth.key_secret = Secret::new("bench-key-secret-0123456789abcdef0123456789");
    gateway_config.extra.upstream.conversation = format!("http://{}", conversation.grpc);
    let gateway = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_gateway::run(gateway_config, Listeners { http, grpc }, shutdown)
    })
    .await;
    for addr in [conversation.http, gateway.http] {
        let url = format!("http://{addr}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        while reqwest::get(&url).await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "{url} never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Cluster { gateway, conversation }
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Creates a tenant, an API key and `count` conversations; returns the key and the message URLs.
async fn prepare(http: &reqwest::Client, base: &str, count: usize) -> (String, Vec<String>) {
    let tenant = json(
        http.post(format!("{base}/admin/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await
            .expect("create tenant"),
    )
    .await;
    let tenant_id = tenant["id"].as_str().expect("tenant id");
    let key = json(
        http.post(format!("{base}/admin/v1/tenants/{tenant_id}/api-keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"name": "bench"}))
            .send()
            .await
            .expect("create key"),
    )
    .await;
    let key = key["key"].as_str().expect("key").to_owned();
    let mut urls = Vec::with_capacity(count);
    for i in 0..count {
        let contact = json(
            http.post(format!("{base}/v1/contacts"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"identity": {"channel": "web", "external_id": format!("visitor-{i}")}}))
                .send()
                .await
                .expect("contact"),
        )
        .await;
        let conversation = json(
            http.post(format!("{base}/v1/conversations"))
                .bearer_auth(&key)
                .json(&serde_json::json!({"contact_id": contact["id"], "channel": "web"}))
                .send()
                .await
                .expect("conversation"),
        )
        .await;
        let id = conversation["id"].as_str().expect("conversation id");
        urls.push(format!("{base}/v1/conversations/{id}/messages"));
    }
    (key, urls)
}

struct OpenLoop {
    measured: Measured,
    target_rate: u64,
    failed: u64,
    late: u64,
}

/// Posts at `rate` messages per second for `seconds`, round robin over `urls`.
async fn open_loop(
    http: &reqwest::Client,
    key: &str,
    urls: &Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
    max_in_flight: u64,
) -> OpenLoop {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let in_flight = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut late = 0;
    let body = Arc::new(serde_json::to_vec(&serde_json::json!({"role": "customer", "text": TEXT})).expect("json"));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            late += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let request = http
            .post(&urls[i as usize % urls.len()])
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.as_ref().clone());
        let (in_flight, failed, sender) = (in_flight.clone(), failed.clone(), sender.clone());
        tokio::spawn(async move {
            let ok = matches!(request.send().await, Ok(r) if r.status() == 201);
            if ok {
                let _ = sender.send(scheduled.elapsed().as_micros() as u64);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(sender);
    let mut latency = histogram();
    let mut ok = 0;
    while let Some(micros) = receiver.recv().await {
        latency.saturating_record(micros);
        ok += 1;
    }
    OpenLoop {
        measured: Measured {
            ops: ok,
            elapsed: start.elapsed(),
            latency,
        },
        target_rate: rate,
        failed: failed.load(Ordering::Relaxed),
        late,
    }
}

fn line(run: &OpenLoop, baseline: f64) -> String {
    let m = &run.measured;
    let q = |q: f64| m.latency.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "| {} msg/s open loop | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
        run.target_rate,
        m.ops,
        m.rate(),
        m.rate() / baseline,
        q(0.5),
        q(0.9),
        q(0.99),
        m.latency.max() as f64 / 1000.0,
        run.failed,
        run.late,
    )
}

/// Runs the ingest benchmark and prints its report.
pub async fn run(args: Args) {
    println!("# Ingest benchmark\n");
    let nats = NatsServer::start_with(Sync::Always);
    let log = crate::log::open(&nats, args.partitions).await;
    let baseline = crate::log::raw_publish(&log, args.partitions, 256, 30_000, 99).await;
    let cluster = start_cluster(&nats, args.partitions).await;
    let base = format!("http://{}", cluster.gateway.http);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight as usize)
        .build()
        .expect("http client");
    let (key, urls) = prepare(&http, &base, args.conversations).await;
    let urls = Arc::new(urls);
    println!(
        "Durable writes (sync_interval always), {} partitions, {} conversations, {}-byte messages, \
         gateway and conversation service in-process with the load generator, {} CPU cores.\n",
        args.partitions,
        args.conversations,
        TEXT.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Warm-up: connections, allocations and the read model's first pages.
    open_loop(&http, &key, &urls, args.rate / 2, 2, args.max_in_flight).await;
    let full = open_loop(&http, &key, &urls, args.rate, args.seconds, args.max_in_flight).await;
    let half = open_loop(&http, &key, &urls, args.rate / 2, args.seconds, args.max_in_flight).await;
    println!("| run | messages | msg/s | ratio to raw publish | p50 ms | p90 ms | p99 ms | max ms | failed | late |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| raw durable JetStream publish, 256 in flight (baseline) | {} | {:.0} | — | {:.2} | {:.2} | {:.2} | {:.2} | 0 | 0 |",
        baseline.ops,
        baseline.rate(),
        baseline.latency.value_at_quantile(0.5) as f64 / 1000.0,
        baseline.latency.value_at_quantile(0.9) as f64 / 1000.0,
        baseline.latency.value_at_quantile(0.99) as f64 / 1000.0,
        baseline.latency.max() as f64 / 1000.0,
    );
    println!("{}", line(&full, baseline.rate()));
    println!("{}", line(&half, baseline.rate()));
    let full_ok = full.measured.rate() >= args.rate as f64 * 0.98 && full.failed == 0 && full.late == 0;
    let p99 = half.measured.latency.value_at_quantile(0.99) as f64 / 1000.0;
    println!(
        "\nat {} msg/s: {:.0} msg/s sustained (goal: at least {}: {})",
        args.rate,
        full.measured.rate(),
        args.rate,
        if full_ok { "met" } else { "NOT met" }
    );
    println!(
        "at {} msg/s: p99 {p99:.2} ms (goal: under 20 ms: {})\n",
        args.rate / 2,
        if p99 < 20.0 && half.failed == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = cluster.gateway.stop().await;
    let _ = cluster.conversation.stop().await;
}
