//! The webhook service end to end: a real nats-server, the conversation service in-process to
//! produce real events, the webhook service (in-process, or the real binary where a test kills
//! it) and real local HTTP receivers that verify every signature on their own.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_proto::conversation::v1 as conv;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::webhook::v1 as pb;
use yy_proto::webhook::v1::webhook_service_client::WebhookServiceClient;
use yy_runtime::{Listeners, RunError, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, ServiceProcess, spawn_service};
use yy_webhook::{WebhookConfig, WebhookSettings};

const TENANT: &str = "ten_hooks";
const SECRET_KEY: &str = "webhook-test-secret-key-0123456789abcdef";

fn as_tenant<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-yy-tenant", TENANT.parse().expect("metadata"));
    request
}

fn nats_config(nats: &NatsServer) -> NatsConfig {
    NatsConfig {
        url: nats.url(),
        monitor_url: Some(nats.monitor_url()),
        ..NatsConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        partitions: 2,
        ..LogConfig::default()
    }
}

/// Settings for a test: loopback receivers allowed, a short timeout, no jitter unless given.
fn settings(schedule: &[u64], time_scale: f64) -> WebhookSettings {
    WebhookSettings {
        secret_key: yy_runtime::Secret::new(SECRET_KEY),
        retry_schedule_secs: schedule.to_vec(),
        retry_jitter: 0.0,
        time_scale,
        timeout_secs: 2,
        allow_cidrs: vec!["127.0.0.0/8".into(), "::1/128".into()],
        ..WebhookSettings::default()
    }
}

async fn wait_ready(url: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(url).await.map(|r| r.status().as_u16()).ok() == Some(200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it returns something, for up to `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn start_conversation(nats: &NatsServer) -> RunningService<RunError> {
    let config: ServiceConfig<yy_conversation::ConversationConfig> = ServiceConfig {
        nats: nats_config(nats),
        eventlog: log_config(),
        ..ServiceConfig::default()
    };
    let service = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_conversation::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    wait_ready(&format!("http://{}/readyz", service.http), String::new).await;
    service
}

async fn start_webhook(nats: &NatsServer, settings: WebhookSettings) -> RunningService<RunError> {
    let config: ServiceConfig<WebhookConfig> = ServiceConfig {
        nats: nats_config(nats),
        eventlog: log_config(),
        extra: WebhookConfig { webhook: settings },
        ..ServiceConfig::default()
    };
    let service = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_webhook::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    wait_ready(&format!("http://{}/readyz", service.http), String::new).await;
    service
}

async fn conversations(service: &RunningService<RunError>) -> ConversationServiceClient<Channel> {
    ConversationServiceClient::connect(format!("http://{}", service.grpc))
        .await
        .expect("connect to conversation")
}

async fn webhooks(addr: String) -> WebhookServiceClient<Channel> {
    WebhookServiceClient::connect(addr).await.expect("connect to webhook")
}

/// A contact and an open conversation with it.
async fn open_conversation(client: &mut ConversationServiceClient<Channel>, who: &str) -> String {
    let contact = client
        .upsert_contact(as_tenant(conv::UpsertContactRequest {
            identity: Some(conv::ChannelIdentity {
                channel: "web".into(),
                external_id: who.into(),
            }),
            ..Default::default()
        }))
        .await
        .expect("upsert contact")
        .into_inner()
        .contact
        .expect("contact");
    client
        .open_conversation(as_tenant(conv::OpenConversationRequest {
            contact_id: contact.id,
            channel: "web".into(),
            ..Default::default()
        }))
        .await
        .expect("open")
        .into_inner()
        .id
}

async fn post(client: &mut ConversationServiceClient<Channel>, conversation: &str, text: &str) {
    client
        .post_message(as_tenant(conv::PostMessageRequest {
            conversation_id: conversation.into(),
            role: "customer".into(),
            text: text.into(),
            ..Default::default()
        }))
        .await
        .expect("post");
}

async fn create_endpoint(
    client: &mut WebhookServiceClient<Channel>,
    url: &str,
    event_types: &[&str],
) -> Result<pb::CreateEndpointResponse, tonic::Status> {
    client
        .create_endpoint(as_tenant(pb::CreateEndpointRequest {
            settings: Some(pb::EndpointSettings {
                url: url.into(),
                event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    body: serde_json::Value,
    at: Instant,
    signature_ok: bool,
}

/// How a receiver answers: a status per (webhook-id, attempt number), 200 by default.
type Script = dyn Fn(&str, usize, &serde_json::Value) -> (u16, Vec<(&'static str, String)>) + Send + Sync;

struct Inbox {
    secrets: Vec<Vec<u8>>,
    received: Vec<Received>,
    script: Box<Script>,
}

/// A local HTTP receiver that checks every Standard Webhooks signature with its own HMAC code,
/// independent of the service's signing code.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox {
            secrets: Vec::new(),
            received: Vec::new(),
            script: Box::new(|_, _, _| (200, Vec::new())),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, inbox }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn trust(&self, secret: &str) {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 secret");
        self.inbox.lock().unwrap().secrets.push(key);
    }

    fn answer(
        &self,
        script: impl Fn(&str, usize, &serde_json::Value) -> (u16, Vec<(&'static str, String)>) + Send + Sync + 'static,
    ) {
        self.inbox.lock().unwrap().script = Box::new(script);
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Requests per webhook-id.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.received() {
            *counts.entry(r.id).or_default() += 1;
        }
        counts
    }
}

async fn receive(State(inbox): State<Arc<Mutex<Inbox>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let mut inbox = inbox.lock().unwrap();
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| (t - chrono_now()).abs() < 300);
    let signature_ok = fresh
        && inbox.secrets.iter().any(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(&body);
            let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
            signatures.split(' ').any(|s| s == expected)
        });
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let attempt = inbox.received.iter().filter(|r| r.id == id).count() + 1;
    let (status, extra) = (inbox.script)(&id, attempt, &body);
    inbox.received.push(Received {
        id,
        body,
        at: Instant::now(),
        signature_ok,
    });
    let mut answer = HeaderMap::new();
    for (name, value) in extra {
        answer.insert(name, value.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), answer)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn attempts(
    client: &mut WebhookServiceClient<Channel>,
    endpoint: &str,
    message: &str,
) -> Vec<pb::DeliveryAttempted> {
    client
        .list_attempts(as_tenant(pb::ListAttemptsRequest {
            endpoint_id: endpoint.into(),
            message_id: message.into(),
            limit: 100,
        }))
        .await
        .expect("attempts")
        .into_inner()
        .attempts
}

async fn messages(client: &mut WebhookServiceClient<Channel>, endpoint: &str, status: &str) -> Vec<pb::Message> {
    client
        .list_messages(as_tenant(pb::ListMessagesRequest {
            endpoint_id: endpoint.into(),
            status: status.into(),
            limit: 1000,
            ..Default::default()
        }))
        .await
        .expect("messages")
        .into_inner()
        .messages
}

#[tokio::test]
async fn signed_events_arrive_and_failures_are_retried_on_the_scaled_schedule_with_the_same_id() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    // 5 s then 300 s, a hundred times faster: 50 ms, then 3 s.
    let webhook = start_webhook(&nats, settings(&[5, 300, 1800], 100.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["conversation.*", "message.created"])
        .await
        .expect("create endpoint");
    assert!(created.secret.starts_with("whsec_"));
    receiver.trust(&created.secret);
    let endpoint = created.endpoint.expect("endpoint").endpoint_id;
    // The secret is shown once.
    let again = api
        .get_endpoint(as_tenant(pb::GetEndpointRequest {
            endpoint_id: endpoint.clone(),
        }))
        .await
        .expect("get")
        .into_inner();
    assert!(again.enabled && again.settings.expect("settings").event_types.len() == 2);

    // Messages fail twice with 500, then succeed.
    receiver.answer(|_, attempt, body| {
        if body["type"] == "message.created" && attempt <= 2 {
            (500, Vec::new())
        } else {
            (200, Vec::new())
        }
    });
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "signed").await;
    post(&mut client, &conversation_id, "hello").await;

    let received = eventually("three attempts of the message", Duration::from_secs(20), || {
        let receiver = receiver.clone();
        async move {
            let messages: Vec<Received> = receiver
                .received()
                .into_iter()
                .filter(|r| r.body["type"] == "message.created")
                .collect();
            (messages.len() >= 3).then_some(messages)
        }
    })
    .await;
    assert!(received.iter().all(|r| r.signature_ok), "every delivery verifies");
    assert!(
        received.iter().all(|r| r.id == received[0].id),
        "one webhook-id on every attempt"
    );
    assert_eq!(received[0].body["data"]["text"], "hello");
    assert_eq!(received[0].body["data"]["conversation_id"], conversation_id.as_str());
    let first_gap = received[1].at - received[0].at;
    let second_gap = received[2].at - received[1].at;
    assert!(
        first_gap < Duration::from_millis(1_000),
        "first retry after ~50 ms: {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(2_900) && second_gap < Duration::from_millis(5_000),
        "second retry after ~3 s: {second_gap:?}"
    );
    let created_events: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.body["type"] == "conversation.created")
        .collect();
    assert_eq!(created_events.len(), 1);
    assert!(created_events[0].signature_ok);

    // Every attempt is recorded: status, latency, the excerpt.
    let message_id = received[0].id.clone();
    let recorded = eventually("the third attempt to be recorded", Duration::from_secs(5), || {
        let mut api = api.clone();
        let (endpoint, message_id) = (endpoint.clone(), message_id.clone());
        async move {
            let recorded = attempts(&mut api, &endpoint, &message_id).await;
            (recorded.len() == 3).then_some(recorded)
        }
    })
    .await;
    let codes: Vec<u32> = recorded.iter().rev().map(|a| a.status_code).collect();
    assert_eq!(codes, [500, 500, 200]);
    assert!(recorded[0].delivered && recorded[0].next_attempt_at_ms == 0);
    assert!(!recorded[1].delivered && recorded[1].next_attempt_at_ms > recorded[1].started_at_ms);
    let delivered = messages(&mut api, &endpoint, "delivered").await;
    assert!(delivered.iter().any(|m| m.message_id == message_id && m.attempts == 3));

    // A rotated secret signs beside the old one: a receiver that still knows only the old one
    // verifies the next delivery, and so does one that knows only the new one.
    let rotated = api
        .rotate_secret(as_tenant(pb::RotateSecretRequest {
            endpoint_id: endpoint.clone(),
            secret: String::new(),
        }))
        .await
        .expect("rotate")
        .into_inner();
    assert_ne!(rotated.secret, created.secret);
    receiver.answer(|_, _, _| (200, Vec::new()));
    post(&mut client, &conversation_id, "after rotation").await;
    let last = eventually("the delivery after rotation", Duration::from_secs(10), || {
        let receiver = receiver.clone();
        async move {
            receiver
                .received()
                .into_iter()
                .find(|r| r.body["data"]["text"] == "after rotation")
        }
    })
    .await;
    assert!(last.signature_ok, "the old secret still verifies");
    receiver.inbox.lock().unwrap().secrets = Vec::new();
    receiver.trust(&rotated.secret);
    post(&mut client, &conversation_id, "new secret").await;
    let newest = eventually(
        "the delivery checked with the new secret",
        Duration::from_secs(10),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .into_iter()
                    .find(|r| r.body["data"]["text"] == "new secret")
            }
        },
    )
    .await;
    assert!(newest.signature_ok, "the new secret verifies");
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn internal_addresses_are_refused_at_registration_and_at_delivery_unless_allowlisted() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();

    // With every network allowlisted, endpoints on internal addresses register.
    let mut open_settings = settings(&[], 1.0);
    open_settings.allow_cidrs = vec!["0.0.0.0/0".into(), "::/0".into()];
    let open = start_webhook(&nats, open_settings).await;
    let mut api = webhooks(format!("http://{}", open.grpc)).await;
    let mut registered = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://localhost:{port}/hook"),
    ] {
        let created = create_endpoint(&mut api, &url, &["message.created"])
            .await
            .unwrap_or_else(|e| panic!("{url} allowlisted: {e}"));
        registered.push(created);
    }
    open.stop().await.expect("stop");

    // Without the allowlist, registration is refused for each kind of internal address.
    let mut strict_settings = settings(&[], 1.0);
    strict_settings.allow_cidrs = Vec::new();
    let strict = start_webhook(&nats, strict_settings).await;
    let mut api = webhooks(format!("http://{}", strict.grpc)).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://localhost:{port}/hook"),
    ] {
        let status = create_endpoint(&mut api, &url, &["message.created"])
            .await
            .expect_err(&format!("{url} must be refused"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{url}");
        assert!(
            status.message().starts_with("settings.url:"),
            "{url}: {}",
            status.message()
        );
        assert_eq!(
            status.metadata().get("yy-error").and_then(|v| v.to_str().ok()),
            Some("validation-failed")
        );
    }

    // And delivery to the endpoints registered earlier is refused at connect time.
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "ssrf").await;
    post(&mut client, &conversation_id, "do not deliver").await;
    for created in registered {
        let endpoint = created.endpoint.expect("endpoint").endpoint_id;
        let refused = eventually("a refused attempt", Duration::from_secs(15), || {
            let mut api = api.clone();
            let endpoint = endpoint.clone();
            async move {
                let request = as_tenant(pb::ListAttemptsRequest {
                    endpoint_id: endpoint,
                    message_id: String::new(),
                    limit: 10,
                });
                api.list_attempts(request)
                    .await
                    .ok()?
                    .into_inner()
                    .attempts
                    .into_iter()
                    .next()
            }
        })
        .await;
        assert_eq!(refused.status_code, 0);
        assert!(!refused.delivered);
        assert!(
            refused.error.contains("refused address") || refused.error.contains("may not reach"),
            "{}",
            refused.error
        );
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");
    strict.stop().await.expect("stop");
}

#[tokio::test]
async fn a_burst_of_2000_events_survives_a_kill_of_the_webhook_service() {
    const EVENTS: usize = 2_000;
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    let env = [
        ("WEBHOOK__SECRET_KEY", SECRET_KEY),
        ("WEBHOOK__ALLOW_CIDRS", "[\"127.0.0.0/8\"]"),
        ("WEBHOOK__RETRY_SCHEDULE_SECS", "[1, 1, 1, 1, 1]"),
        ("WEBHOOK__TIME_SCALE", "10"),
    ];
    let start = || async {
        let process = ServiceProcess::start("webhook", &nats, &env);
        wait_ready(&process.url("/readyz"), || process.log()).await;
        process
    };
    let mut webhook = start().await;
    let mut api = webhooks(format!("http://127.0.0.1:{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["message.created"])
        .await
        .expect("create");
    receiver.trust(&created.secret);

    let mut client = conversations(&conversation).await;
    let conversation_ids = {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(open_conversation(&mut client, &format!("burst-{i}")).await);
        }
        ids
    };
    let producer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut posts = tokio::task::JoinSet::new();
            for (i, conversation) in conversation_ids.into_iter().enumerate() {
                let mut client = client.clone();
                posts.spawn(async move {
                    for n in 0..EVENTS / 20 {
                        post(&mut client, &conversation, &format!("burst {i}/{n}")).await;
                    }
                });
            }
            posts.join_all().await;
        })
    };

    eventually("a quarter of the burst to arrive", Duration::from_secs(60), || {
        let receiver = receiver.clone();
        async move { (receiver.counts().len() >= EVENTS / 4).then_some(()) }
    })
    .await;
    webhook.signal("KILL");
    webhook.wait_exit(Duration::from_secs(10));
    let at_kill = receiver.counts().len();
    webhook = start().await;
    producer.await.expect("producer");

    let counts = eventually("every event to arrive", Duration::from_secs(90), || {
        let receiver = receiver.clone();
        async move {
            let counts = receiver.counts();
            (counts.len() >= EVENTS).then_some(counts)
        }
    })
    .await;
    // Anything still in flight lands; then nothing more is expected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = receiver.counts().into_iter().chain(counts).collect::<HashMap<_, _>>();
    let received = receiver.received();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "kill test: {} distinct webhook-ids of {EVENTS}, {} requests, {duplicates} duplicates ({at_kill} had arrived at the kill)",
        counts.len(),
        received.len()
    );
    assert_eq!(counts.len(), EVENTS, "every event delivered at least once, none lost");
    assert!(received.iter().all(|r| r.signature_ok), "every delivery verifies");
    let texts: std::collections::HashSet<String> = received
        .iter()
        .map(|r| r.body["data"]["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts.len(), EVENTS, "one message per event posted");
    drop(webhook);
}

#[tokio::test]
async fn replay_redelivers_exactly_the_requested_set() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    // One attempt only: a failure is final at once.
    let webhook = start_webhook(&nats, settings(&[], 1.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["message.created"])
        .await
        .expect("create");
    receiver.trust(&created.secret);
    let endpoint = created.endpoint.expect("endpoint").endpoint_id;
    receiver.answer(|_, _, body| {
        let failing = body["data"]["text"].as_str().is_some_and(|t| t.starts_with("fail"));
        (if failing { 500 } else { 200 }, Vec::new())
    });
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "replay").await;
    for text in ["ok 1", "fail 1", "ok 2", "fail 2", "ok 3", "fail 3"] {
        post(&mut client, &conversation_id, text).await;
    }
    let (failed, delivered) = eventually("three failed and three delivered", Duration::from_secs(15), || {
        let mut api = api.clone();
        let endpoint = endpoint.clone();
        async move {
            let failed = messages(&mut api, &endpoint, "failed").await;
            let delivered = messages(&mut api, &endpoint, "delivered").await;
            (failed.len() == 3 && delivered.len() == 3).then_some((failed, delivered))
        }
    })
    .await;
    receiver.answer(|_, _, _| (200, Vec::new()));

    // Waits until the receiver got `expected` more requests, then a little longer for strays,
    // and returns the ids of the new ones.
    async fn new_requests(receiver: &Receiver, before: usize, expected: usize) -> Vec<String> {
        eventually("the replayed deliveries", Duration::from_secs(10), || async {
            (receiver.received().len() >= before + expected).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut ids: Vec<String> = receiver.received()[before..].iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids
    }
    let sorted = |messages: &[pb::Message]| {
        let mut ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
        ids.sort();
        ids
    };

    // One message.
    let before = receiver.received().len();
    let one = delivered[1].message_id.clone();
    let replayed = api
        .replay(as_tenant(pb::ReplayRequest {
            endpoint_id: endpoint.clone(),
            message_id: one.clone(),
            ..Default::default()
        }))
        .await
        .expect("replay one")
        .into_inner();
    assert_eq!(replayed.message_ids, std::slice::from_ref(&one));
    assert_eq!(new_requests(&receiver, before, 1).await, [one]);

    // Every failed message since the start.
    let since = failed.iter().map(|m| m.created_at_ms).min().unwrap() - 1;
    let before = receiver.received().len();
    let replayed = api
        .replay(as_tenant(pb::ReplayRequest {
            endpoint_id: endpoint.clone(),
            since_ms: since,
            only_failed: true,
            ..Default::default()
        }))
        .await
        .expect("replay failed")
        .into_inner();
    let mut ids = replayed.message_ids.clone();
    ids.sort();
    assert_eq!(ids, sorted(&failed));
    assert_eq!(new_requests(&receiver, before, 3).await, sorted(&failed));
    eventually("the failed ones to be delivered", Duration::from_secs(10), || {
        let mut api = api.clone();
        let endpoint = endpoint.clone();
        async move { messages(&mut api, &endpoint, "failed").await.is_empty().then_some(()) }
    })
    .await;

    // Every message since the fourth one was created.
    let mut all = messages(&mut api, &endpoint, "").await;
    all.sort_by_key(|m| m.created_at_ms);
    let cut = all[3].created_at_ms;
    let expected: Vec<pb::Message> = all.iter().filter(|m| m.created_at_ms >= cut).cloned().collect();
    let before = receiver.received().len();
    let replayed = api
        .replay(as_tenant(pb::ReplayRequest {
            endpoint_id: endpoint.clone(),
            since_ms: cut,
            ..Default::default()
        }))
        .await
        .expect("replay since")
        .into_inner();
    let mut ids = replayed.message_ids.clone();
    ids.sort();
    assert_eq!(ids, sorted(&expected));
    assert_eq!(new_requests(&receiver, before, expected.len()).await, sorted(&expected));

    // Bad requests name the field.
    let status = api
        .replay(as_tenant(pb::ReplayRequest {
            endpoint_id: endpoint.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("nothing asked");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("message_id:"), "{}", status.message());
    let status = api
        .replay(as_tenant(pb::ReplayRequest {
            endpoint_id: endpoint.clone(),
            message_id: "msg_unknown".into(),
            ..Default::default()
        }))
        .await
        .expect_err("unknown message");
    assert_eq!(status.code(), tonic::Code::NotFound);
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_retry_after_is_honoured() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    // Schedule: 1 s, scaled to 10 ms; Retry-After: 30 s, scaled to 300 ms.
    let webhook = start_webhook(&nats, settings(&[1, 1, 1], 100.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let (throttled, gone, watcher) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let mut ids = Vec::new();
    for (receiver, types) in [
        (&throttled, &["message.created"][..]),
        (&gone, &["message.created"][..]),
        (&watcher, &["webhook.*"][..]),
    ] {
        let created = create_endpoint(&mut api, &receiver.url(), types).await.expect("create");
        receiver.trust(&created.secret);
        ids.push(created.endpoint.expect("endpoint").endpoint_id);
    }
    throttled.answer(|_, attempt, _| {
        if attempt == 1 {
            (429, vec![("retry-after", "30".to_owned())])
        } else {
            (200, Vec::new())
        }
    });
    gone.answer(|_, _, _| (410, Vec::new()));
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "gone").await;
    post(&mut client, &conversation_id, "hello").await;

    let twice = eventually("the retry after Retry-After", Duration::from_secs(10), || {
        let throttled = throttled.clone();
        async move {
            let received = throttled.received();
            (received.len() >= 2).then_some(received)
        }
    })
    .await;
    let gap = twice[1].at - twice[0].at;
    assert!(
        gap >= Duration::from_millis(280),
        "Retry-After (30 s / 100) honoured over the 10 ms schedule: {gap:?}"
    );

    let disabled = eventually("the gone endpoint to be disabled", Duration::from_secs(10), || {
        let mut api = api.clone();
        let id = ids[1].clone();
        async move {
            let endpoint = api
                .get_endpoint(as_tenant(pb::GetEndpointRequest { endpoint_id: id }))
                .await
                .ok()?
                .into_inner();
            (!endpoint.enabled).then_some(endpoint)
        }
    })
    .await;
    assert_eq!(disabled.disabled_reason, "gone");
    assert_eq!(gone.received().len(), 1, "410 is not retried");
    let notice = eventually("webhook.endpoint_disabled", Duration::from_secs(10), || {
        let watcher = watcher.clone();
        async move { watcher.received().into_iter().next() }
    })
    .await;
    assert!(notice.signature_ok);
    assert_eq!(notice.body["type"], "webhook.endpoint_disabled");
    assert_eq!(notice.body["data"]["endpoint_id"], ids[1].as_str());
    assert_eq!(notice.body["data"]["reason"], "gone");

    // Disabled: new events are not made into messages for it; enabled again, it hears again.
    post(&mut client, &conversation_id, "while disabled").await;
    api.set_endpoint_enabled(as_tenant(pb::SetEndpointEnabledRequest {
        endpoint_id: ids[1].clone(),
        enabled: true,
    }))
    .await
    .expect("enable");
    gone.answer(|_, _, _| (200, Vec::new()));
    post(&mut client, &conversation_id, "enabled again").await;
    let texts = eventually("the delivery after enabling", Duration::from_secs(10), || {
        let gone = gone.clone();
        async move {
            let texts: Vec<String> = gone
                .received()
                .iter()
                .map(|r| r.body["data"]["text"].as_str().unwrap_or_default().to_owned())
                .collect();
            texts.iter().any(|t| t == "enabled again").then_some(texts)
        }
    })
    .await;
    assert!(!texts.iter().any(|t| t == "while disabled"));
    // The throttled endpoint answered 429 to the first attempt of each of the three messages.
    let expected = [
        "yy_webhook_endpoints_disabled_total{reason=\"gone\"} 1",
        "yy_webhook_attempts_total{result=\"gone\"} 1",
        "yy_webhook_attempts_total{result=\"retry\"} 3",
    ];
    let metrics_url = format!("http://{}/metrics", webhook.http);
    eventually("the metrics to count it all", Duration::from_secs(10), || {
        let metrics_url = metrics_url.clone();
        async move {
            let metrics = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
            expected.iter().all(|line| metrics.contains(line)).then_some(())
        }
    })
    .await;
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn bad_endpoint_settings_are_refused_naming_the_field() {
    let nats = NatsServer::start();
    let webhook = start_webhook(&nats, settings(&[], 1.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let cases: Vec<(pb::EndpointSettings, &str)> = vec![
        (
            pb::EndpointSettings {
                url: "ftp://example.com".into(),
                event_types: vec!["*".into()],
                ..Default::default()
            },
            "settings.url:",
        ),
        (
            pb::EndpointSettings {
                url: "http://127.0.0.1:9/".into(),
                ..Default::default()
            },
            "settings.event_types:",
        ),
        (
            pb::EndpointSettings {
                url: "http://127.0.0.1:9/".into(),
                event_types: vec!["mesage.created".into()],
                ..Default::default()
            },
            "settings.event_types[0]:",
        ),
        (
            pb::EndpointSettings {
                url: "http://127.0.0.1:9/".into(),
                event_types: vec!["*".into()],
                headers: [("webhook-signature".to_owned(), "x".to_owned())].into(),
                ..Default::default()
            },
            "settings.headers[\"webhook-signature\"]:",
        ),
    ];
    for (settings, field) in cases {
        let status = api
            .create_endpoint(as_tenant(pb::CreateEndpointRequest {
                settings: Some(settings),
                ..Default::default()
            }))
            .await
            .expect_err(field);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
    }
    let status = api
        .create_endpoint(as_tenant(pb::CreateEndpointRequest {
            settings: Some(pb::EndpointSettings {
                url: "http://127.0.0.1:9/".into(),
                event_types: vec!["*".into()],
                ..Default::default()
            }),
            secret: "not-a-secret".into(),
            ..Default::default()
        }))
        .await
        .expect_err("bad secret");
    assert!(status.message().starts_with("secret:"), "{}", status.message());
    let status = api
        .get_endpoint(as_tenant(pb::GetEndpointRequest {
            endpoint_id: "whk_nope".into(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let types = api
        .list_event_types(as_tenant(pb::ListEventTypesRequest {}))
        .await
        .expect("types")
        .into_inner()
        .event_types;
    assert!(
        types
            .iter()
            .any(|t| t.name == "routing.decided" && t.schema_json.contains("\"data\""))
    );
    webhook.stop().await.expect("stop");
}

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * 0.99).ceil() as usize).clamp(1, samples.len()) - 1]
}

/// Posts `count` messages one after another and returns, for each, the time from the post's
/// answer to its delivery at `receiver`.
async fn delivery_latencies(
    client: &mut ConversationServiceClient<Channel>,
    conversation: &str,
    receiver: &Receiver,
    tag: &str,
    count: usize,
) -> Vec<Duration> {
    let mut posted = HashMap::new();
    for i in 0..count {
        let text = format!("{tag} {i}");
        post(client, conversation, &text).await;
        posted.insert(text, Instant::now());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = eventually("every delivery", Duration::from_secs(30), || {
        let receiver = receiver.clone();
        let posted = posted.clone();
        async move {
            let received: HashMap<String, Instant> = receiver
                .received()
                .into_iter()
                .filter_map(|r| Some((r.body["data"]["text"].as_str()?.to_owned(), r.at)))
                .filter(|(text, _)| posted.contains_key(text))
                .collect();
            (received.len() == posted.len()).then_some(received)
        }
    })
    .await;
    posted
        .iter()
        .map(|(text, at)| received[text].saturating_duration_since(*at))
        .collect()
}

#[tokio::test]
async fn a_dead_endpoint_beside_a_healthy_one_does_not_slow_it() {
    const MESSAGES: usize = 150;
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    // The dead endpoint is retried every 100 ms, so it always has attempts hanging.
    let webhook = start_webhook(&nats, settings(&[1, 1, 1, 1, 1, 1, 1, 1], 10.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let healthy = Receiver::start().await;
    let created = create_endpoint(&mut api, &healthy.url(), &["message.created"])
        .await
        .expect("create");
    healthy.trust(&created.secret);
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "isolation").await;
    // Warm-up: connections, the first snapshot of the state.
    delivery_latencies(&mut client, &conversation_id, &healthy, "warm-up", 20).await;
    let alone = p99(delivery_latencies(&mut client, &conversation_id, &healthy, "alone", MESSAGES).await);

    // A dead endpoint: it accepts connections and never answers, so every attempt waits for
    // the whole timeout.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead_url = format!("http://{}/hook", dead.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = dead.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    create_endpoint(&mut api, &dead_url, &["message.created"])
        .await
        .expect("create the dead endpoint");
    let beside = p99(delivery_latencies(&mut client, &conversation_id, &healthy, "beside", MESSAGES).await);
    let hanging = held.lock().unwrap().len();
    eprintln!(
        "healthy endpoint delivery p99: alone {alone:?}, beside a dead one {beside:?} ({hanging} connections held)"
    );
    assert!(
        hanging >= 10,
        "the dead endpoint was being tried: {hanging} connections"
    );
    // Within 2x of its p99 alone; 100 ms of slack absorbs scheduling noise on a shared machine
    // (`make bench` measures the ratio itself).
    assert!(
        beside <= alone * 2 + Duration::from_millis(100),
        "p99 beside a dead endpoint {beside:?} vs alone {alone:?}"
    );
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn ordered_endpoints_deliver_a_conversations_messages_in_order() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    let webhook = start_webhook(&nats, settings(&[1, 1, 1], 10.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = api
        .create_endpoint(as_tenant(pb::CreateEndpointRequest {
            settings: Some(pb::EndpointSettings {
                url: receiver.url(),
                event_types: vec!["message.created".into()],
                ordered: true,
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    receiver.trust(&created.secret);
    // The first message fails twice; the others must wait for it.
    receiver.answer(|_, attempt, body| {
        if body["data"]["text"] == "first" && attempt <= 2 {
            (503, Vec::new())
        } else {
            (200, Vec::new())
        }
    });
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "ordered").await;
    for text in ["first", "second", "third"] {
        post(&mut client, &conversation_id, text).await;
    }
    let received = eventually("all three delivered", Duration::from_secs(15), || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (received.len() >= 5).then_some(received)
        }
    })
    .await;
    let texts: Vec<&str> = received
        .iter()
        .map(|r| r.body["data"]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["first", "first", "first", "second", "third"]);
    assert!(received.iter().all(|r| r.signature_ok));
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn an_endpoint_failing_for_days_is_disabled_on_scaled_time() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    // A million times faster: retries every 10 h come every 36 ms, five days last 432 ms.
    let mut failing_settings = settings(&[36_000; 40], 1_000_000.0);
    failing_settings.disable_after_days = 5.0;
    let webhook = start_webhook(&nats, failing_settings).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let (failing, watcher) = (Receiver::start().await, Receiver::start().await);
    let created = create_endpoint(&mut api, &failing.url(), &["message.created"])
        .await
        .expect("create");
    let endpoint = created.endpoint.expect("endpoint").endpoint_id;
    let notices = create_endpoint(&mut api, &watcher.url(), &["webhook.endpoint_disabled"])
        .await
        .expect("create the watcher");
    watcher.trust(&notices.secret);
    failing.answer(|_, _, _| (500, Vec::new()));
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "failing").await;
    post(&mut client, &conversation_id, "never taken").await;

    let notice = eventually("webhook.endpoint_disabled", Duration::from_secs(15), || {
        let watcher = watcher.clone();
        async move { watcher.received().into_iter().next() }
    })
    .await;
    assert!(notice.signature_ok);
    assert_eq!(notice.body["data"]["endpoint_id"], endpoint.as_str());
    assert_eq!(notice.body["data"]["reason"], "failing");
    let state = api
        .get_endpoint(as_tenant(pb::GetEndpointRequest {
            endpoint_id: endpoint.clone(),
        }))
        .await
        .expect("get")
        .into_inner();
    assert!(!state.enabled);
    assert_eq!(state.disabled_reason, "failing");
    assert!(state.failing_since_ms > 0);
    // It failed for (scaled) days, not a single attempt: several were made first.
    let tries = failing.received().len();
    assert!(tries >= 5, "{tries} attempts before disabling");
    // Disabled, it is not tried again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(failing.received().len() <= tries + 1);
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn a_scheduled_retry_survives_a_restart_with_the_same_webhook_id() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    let webhook = start_webhook(&nats, settings(&[2], 1.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["message.created"])
        .await
        .expect("create");
    receiver.trust(&created.secret);
    receiver.answer(|_, attempt, _| (if attempt == 1 { 500 } else { 200 }, Vec::new()));
    let mut client = conversations(&conversation).await;
    let conversation_id = open_conversation(&mut client, "restart").await;
    post(&mut client, &conversation_id, "retry me").await;
    eventually("the first attempt", Duration::from_secs(10), || {
        let receiver = receiver.clone();
        async move { (!receiver.received().is_empty()).then_some(()) }
    })
    .await;
    // Stopped (a final snapshot holds the waiting message) and started again: the retry keeps
    // its recorded time, neither sooner nor lost.
    webhook.stop().await.expect("stop");
    let webhook = start_webhook(&nats, settings(&[2], 1.0)).await;
    let received = eventually("the retry after the restart", Duration::from_secs(10), || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (received.len() >= 2).then_some(received)
        }
    })
    .await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].id, received[1].id);
    assert!(received[1].signature_ok, "the secret opens after the restart");
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(1_900), "retried on schedule: {gap:?}");
    let api = webhooks(format!("http://{}", webhook.grpc)).await;
    let endpoint = created.endpoint.expect("endpoint").endpoint_id;
    let delivered = eventually("the message to be delivered", Duration::from_secs(5), || {
        let mut api = api.clone();
        let endpoint = endpoint.clone();
        async move {
            let delivered = messages(&mut api, &endpoint, "delivered").await;
            (!delivered.is_empty()).then_some(delivered)
        }
    })
    .await;
    assert_eq!(delivered[0].attempts, 2);
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn routing_events_reach_endpoints_as_public_events() {
    let nats = NatsServer::start();
    // The routing log as the routing service would write it: provisioned, then a desk's commit.
    let log = yy_eventlog::EventLog::connect(&nats_config(&nats), log_config(), "webhook-test")
        .await
        .expect("connect to the log");
    log.provision(yy_eventlog::LogContext::ROUTING)
        .await
        .expect("provision routing");
    let webhook = start_webhook(&nats, settings(&[], 1.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["conversation.assigned", "agent.*"])
        .await
        .expect("create");
    receiver.trust(&created.secret);
    let desk = format!("desk_{TENANT}");
    let envelope = |payload| yy_eventlog::EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: TENANT.into(),
        aggregate_type: "desk".into(),
        aggregate_id: desk.clone(),
        occurred_at: Some(std::time::SystemTime::now().into()),
        schema_version: 1,
        payload: Some(payload),
        ..Default::default()
    };
    use yy_proto::routing::v1 as routing;
    let commit = yy_eventlog::NewCommit {
        context: yy_eventlog::LogContext::ROUTING,
        tenant_id: TENANT.into(),
        aggregate_id: desk.clone(),
        command_id: "assign-1".into(),
        events: vec![
            envelope(yy_eventlog::Payload::ConversationOffered(
                routing::ConversationOffered {
                    conversation_id: "conv_1".into(),
                    agent_id: "agt_1".into(),
                    ..Default::default()
                },
            )),
            envelope(yy_eventlog::Payload::ConversationAssigned(
                routing::ConversationAssigned {
                    conversation_id: "conv_1".into(),
                    agent_id: "agt_1".into(),
                    queue: "general".into(),
                    at_ms: 1,
                    waited_ms: 1_500,
                },
            )),
            envelope(yy_eventlog::Payload::AgentPresenceChanged(
                routing::AgentPresenceChanged {
                    agent_id: "agt_1".into(),
                    presence: "away".into(),
                    at_ms: 2,
                },
            )),
        ],
        trace: None,
    };
    log.append(commit, yy_eventlog::Expected::Any).await.expect("append");
    let received = eventually("both public events", Duration::from_secs(15), || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (received.len() >= 2).then_some(received)
        }
    })
    .await;
    // Two messages of an unordered endpoint: they may arrive in either order.
    let of_type = |t: &str| {
        received
            .iter()
            .find(|r| r.body["type"] == t)
            .unwrap_or_else(|| panic!("no {t}"))
    };
    assert_eq!(received.len(), 2, "the offer is not public");
    assert!(received.iter().all(|r| r.signature_ok));
    let assigned = of_type("conversation.assigned");
    assert_eq!(assigned.body["aggregate_id"], "conv_1");
    assert_eq!(assigned.body["data"]["waited_ms"], 1_500);
    assert_eq!(of_type("agent.status_changed").body["data"]["status"], "away");
    webhook.stop().await.expect("stop");
}

#[tokio::test]
async fn ticket_events_reach_endpoints_as_public_events() {
    let nats = NatsServer::start();
    // The ticket log as ticket-sync would write it: a ticket created, then solved from outside.
    let log = yy_eventlog::EventLog::connect(&nats_config(&nats), log_config(), "webhook-test")
        .await
        .expect("connect to the log");
    log.provision(yy_eventlog::LogContext::TICKET)
        .await
        .expect("provision tickets");
    let webhook = start_webhook(&nats, settings(&[], 1.0)).await;
    let mut api = webhooks(format!("http://{}", webhook.grpc)).await;
    let receiver = Receiver::start().await;
    let created = create_endpoint(&mut api, &receiver.url(), &["ticket.*"])
        .await
        .expect("create");
    receiver.trust(&created.secret);
    let envelope = |payload| yy_eventlog::EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: TENANT.into(),
        aggregate_type: "ticket".into(),
        aggregate_id: "tkt_1".into(),
        occurred_at: Some(std::time::SystemTime::now().into()),
        schema_version: 1,
        payload: Some(payload),
        ..Default::default()
    };
    use yy_proto::ticket::v1 as ticket;
    for (command, payload) in [
        (
            "create-1",
            yy_eventlog::Payload::TicketCreated(ticket::TicketCreated {
                subject: "Parcel lost".into(),
                priority: "high".into(),
                ..Default::default()
            }),
        ),
        (
            "solve-1",
            yy_eventlog::Payload::TicketUpdated(ticket::TicketUpdated {
                status: Some("solved".into()),
                previous_status: "open".into(),
                origin: "cnx_helpdesk".into(),
                ..Default::default()
            }),
        ),
    ] {
        let commit = yy_eventlog::NewCommit {
            context: yy_eventlog::LogContext::TICKET,
            tenant_id: TENANT.into(),
            aggregate_id: "tkt_1".into(),
            command_id: command.into(),
            events: vec![envelope(payload)],
            trace: None,
        };
        log.append(commit, yy_eventlog::Expected::Any).await.expect("append");
    }
    let received = eventually("both ticket events", Duration::from_secs(15), || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (received.len() >= 2).then_some(received)
        }
    })
    .await;
    assert!(received.iter().all(|r| r.signature_ok));
    let of_type = |t: &str| {
        received
            .iter()
            .find(|r| r.body["type"] == t)
            .unwrap_or_else(|| panic!("no {t}"))
    };
    assert_eq!(of_type("ticket.created").body["data"]["subject"], "Parcel lost");
    let solved = &of_type("ticket.updated").body["data"];
    assert_eq!(
        (solved["status"].as_str(), solved["origin"].as_str()),
        (Some("solved"), Some("cnx_helpdesk"))
    );
    webhook.stop().await.expect("stop");
}
