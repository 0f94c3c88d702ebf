//! Webhook deliveries: public events made into signed deliveries to a local HTTP receiver, the
//! whole pipeline measured — the durable consumer of the conversation log, the messages recorded
//! in the webhook log, signing, the HTTP POSTs, and every attempt recorded. Baseline, measured in
//! the same run against the same receiver: a plain loop of HTTP POSTs of the same bodies with as
//! many in flight as the endpoint's worker allows, nothing signed or recorded.
//!
//! The events are appended to the conversation log while the webhook service is stopped, then
//! the service is started and timed until the receiver has every message: a backlog drained at
//! full speed, as after an outage.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{EventEnvelope, EventLog, Expected, LogConfig, LogContext, NatsConfig, NewCommit, Payload};
use yy_proto::conversation::v1::MessagePosted;
use yy_proto::webhook::v1 as pb;
use yy_proto::webhook::v1::webhook_service_client::WebhookServiceClient;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, spawn_service};
use yy_webhook::{WebhookConfig, WebhookSettings};

use crate::measure::histogram;

/// Sizes of the webhook benchmark.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Events to deliver.
    #[arg(long, default_value_t = 30_000)]
    events: u64,
    /// Partitions of the log.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Attempts in flight per endpoint (the service's `max_in_flight_per_endpoint`), and POSTs in
    /// flight in the baseline.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
}

const TENANT: &str = "ten_bench";
const TEXT: &str = "Hello, I would like to know where my order is. 你好，我的订单到哪里了？";

#[derive(Default)]
struct Inbox {
    ids: Mutex<HashSet<String>>,
    requests: AtomicU64,
}

/// A receiver that answers 204 at once and counts distinct `webhook-id`s.
async fn start_receiver() -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    let state = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, _body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                state.requests.fetch_add(1, Ordering::Relaxed);
                if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                    state.ids.lock().expect("inbox").insert(id.to_owned());
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

async fn start_webhook(nats: &NatsServer, partitions: u32, in_flight: usize) -> RunningService<RunError> {
    let mut config = ServiceConfig::<WebhookConfig>::default();
    config.nats.url = nats.url();
    config.nats.monitor_url = Some(nats.monitor_url());
    config.eventlog.partitions = partitions;
    config.extra.webhook = WebhookSettings {
        secret_key: Secret::new("bench-webhook-secret-key-0123456789abcdef"),
        allow_cidrs: vec!["127.0.0.0/8".into()],
        max_in_flight_per_endpoint: in_flight,
        ..WebhookSettings::default()
    };
    let service = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_webhook::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    let url = format!("http://{}/readyz", service.http);
    let deadline = Instant::now() + Duration::from_secs(120);
    while reqwest::get(&url).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service
}

/// A body of the size and shape the service delivers.
fn sample_body() -> String {
    serde_json::json!({
        "id": uuid::Uuid::now_v7().to_string(),
        "type": "message.created",
        "tenant_id": TENANT,
        "aggregate_id": "conv_bench_0",
        "occurred_at": "2026-11-25T09:30:00.125Z",
        "data": {
            "id": "msg_0", "conversation_id": "conv_bench_0", "role": "customer", "text": TEXT,
            "content": {"quick_replies": [], "cards": [], "attachments": []},
            "author_id": null, "position": 1,
        },
    })
    .to_string()
}

/// Runs the webhook benchmark and prints its report.
pub async fn run(args: Args) {
    println!("# Webhook benchmark\n");
    let nats = NatsServer::start();
    let (url, inbox) = start_receiver().await;

    // Baseline: plain POSTs of the same body, `in_flight` at a time.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.in_flight)
        .build()
        .expect("client");
    let body = sample_body();
    let warm_up = args.events / 10;
    let plain = |count: u64| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..args.in_flight {
                let (client, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
                workers.spawn(async move {
                    let mut latency = histogram();
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let began = Instant::now();
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .expect("post");
                        assert!(response.status().is_success());
                        latency.saturating_record(began.elapsed().as_micros() as u64);
                    }
                    latency
                });
            }
            let mut latency = histogram();
            for worker in workers.join_all().await {
                latency.add(worker).expect("same bounds");
            }
            (count as f64 / start.elapsed().as_secs_f64(), latency)
        }
    };
    plain(warm_up).await;
    let (plain_rate, plain_latency) = plain(args.events).await;

    // The endpoint exists before the events: it hears only of what happens after registration.
    let webhook = start_webhook(&nats, args.partitions, args.in_flight).await;
    let mut api = WebhookServiceClient::connect(format!("http://{}", webhook.grpc))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(pb::CreateEndpointRequest {
        settings: Some(pb::EndpointSettings {
            url: url.clone(),
            event_types: vec!["message.created".into()],
            ..Default::default()
        }),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-yy-tenant", TENANT.parse().expect("tenant"));
    api.create_endpoint(request).await.expect("create endpoint");
    webhook.stop().await.expect("stop");

    // The backlog: one message per commit, over 1,000 conversations, appended durably.
    let log = EventLog::connect(
        &NatsConfig {
            url: nats.url(),
            ..NatsConfig::default()
        },
        LogConfig {
            partitions: args.partitions,
            ..LogConfig::default()
        },
        "bench-webhook",
    )
    .await
    .expect("connect to the log");
    log.provision(LogContext::CONV).await.expect("provision");
    let appended = Arc::new(AtomicU64::new(0));
    let mut appenders = tokio::task::JoinSet::new();
    for _ in 0..256 {
        let (log, appended) = (log.clone(), appended.clone());
        let total = args.events;
        appenders.spawn(async move {
            loop {
                let i = appended.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let conversation = format!("conv_bench_{}", i % 1_000);
                let commit = NewCommit {
                    context: LogContext::CONV,
                    tenant_id: TENANT.into(),
                    aggregate_id: conversation.clone(),
                    command_id: format!("bench-{i}"),
                    events: vec![EventEnvelope {
                        event_id: uuid::Uuid::now_v7().to_string(),
                        tenant_id: TENANT.into(),
                        aggregate_type: "conversation".into(),
                        aggregate_id: conversation.clone(),
                        occurred_at: Some(std::time::SystemTime::now().into()),
                        schema_version: 1,
                        payload: Some(Payload::MessagePosted(MessagePosted {
                            message_id: format!("msg_{i}"),
                            role: "customer".into(),
                            text: TEXT.into(),
                            position: i / 1_000 + 1,
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    trace: None,
                };
                log.append(commit, Expected::Any).await.expect("append");
            }
        });
    }
    appenders.join_all().await;

    let start = Instant::now();
    let webhook = start_webhook(&nats, args.partitions, args.in_flight).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while (inbox.ids.lock().expect("inbox").len() as u64) < args.events {
        assert!(Instant::now() < deadline, "not every event was delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let delivered = args.events;
    let webhook_rate = delivered as f64 / elapsed.as_secs_f64();
    let duplicates = inbox
        .requests
        .load(Ordering::Relaxed)
        .saturating_sub(args.events * 2 + warm_up);
    webhook.stop().await.expect("stop");

    println!(
        "{} events, one endpoint, {} partitions, {} attempts in flight; receiver and service on the same \
         2 cores; nats-server with `sync_interval: always`.\n",
        args.events, args.partitions, args.in_flight
    );
    println!("| measurement | deliveries | per second | ratio to baseline | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| plain HTTP POST loop (baseline) | {} | {:.0} | — | {:.2} | {:.2} |",
        args.events,
        plain_rate,
        plain_latency.value_at_quantile(0.5) as f64 / 1000.0,
        plain_latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    println!(
        "| webhook deliveries: consumed, recorded, signed, POSTed, attempts recorded | {delivered} | {webhook_rate:.0} | {:.2} | | |",
        webhook_rate / plain_rate
    );
    println!(
        "\n{webhook_rate:.0} deliveries/s including start-up and catching up with the log (goal: at least 5,000: {}; \
         at least half the plain loop: {}); {duplicates} duplicate deliveries.\n",
        if webhook_rate >= 5_000.0 { "met" } else { "NOT met" },
        if webhook_rate >= plain_rate / 2.0 {
            "met"
        } else {
            "NOT met"
        },
    );
}
