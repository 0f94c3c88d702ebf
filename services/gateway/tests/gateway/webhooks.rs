//! Webhooks through the gateway: endpoints, messages, attempts, replays, rotation and the event
//! catalogue over REST, and `yy.webhook.v1.WebhookService` over gRPC, against real conversation
//! and webhook services delivering to a real local HTTP receiver that checks every signature
//! with its own HMAC code.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tonic::transport::Channel;
use yy_proto::webhook::v1 as pb;
use yy_proto::webhook::v1::webhook_service_client::WebhookServiceClient;

use crate::support::Cluster;

/// What the test receiver got: one entry per request.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    body: Value,
    /// Which of the receiver's known secrets (by index) signed it validly.
    signed_by: Vec<usize>,
}

/// A local HTTP endpoint that verifies Standard Webhooks signatures on its own: HMAC-SHA256 of
/// `<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64-decoded secret, base64, each
/// signature prefixed `v1,`. It answers 500 to events whose body contains `please-fail` while
/// `failing` is set, 200 otherwise.
#[derive(Clone, Default)]
struct Receiver {
    secrets: Arc<Mutex<Vec<String>>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    failing: Arc<Mutex<bool>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let receiver = Receiver {
            failing: Arc::new(Mutex::new(true)),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn trust(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// How many requests each webhook-id got.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for delivery in self.deliveries() {
            *counts.entry(delivery.id).or_default() += 1;
        }
        counts
    }
}

fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(STANDARD.encode(mac.finalize().into_bytes()))
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| (now - t).abs() < 300);
    let offered: Vec<&str> = signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).collect();
    let signed_by = receiver
        .secrets
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            fresh && sign(secret, &id, &timestamp, &body).is_some_and(|expected| offered.iter().any(|o| *o == expected))
        })
        .map(|(i, _)| i)
        .collect();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fail = *receiver.failing.lock().unwrap() && body_json.to_string().contains("please-fail");
    receiver.deliveries.lock().unwrap().push(Delivery {
        id,
        body: body_json,
        signed_by,
    });
    if fail {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "receiver says no".into())
    } else {
        (axum::http::StatusCode::OK, "ok".into())
    }
}

/// One tenant's REST calls.
struct Api<'a> {
    cluster: &'a Cluster,
    key: String,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:#?}", self.body);
        self.body
    }

    /// Asserts a problem document of `slug` with `status`; returns its `detail`.
    #[track_caller]
    fn expect_problem(&self, status: StatusCode, slug: &str) -> String {
        assert_eq!(self.status, status, "unexpected answer: {:#?}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "{:#?}", self.body);
        assert_eq!(self.body["type"], format!("/problems/{slug}"), "{:#?}", self.body);
        self.body["detail"].as_str().unwrap_or_default().to_owned()
    }
}

impl<'a> Api<'a> {
    async fn new(cluster: &'a Cluster, name: &str) -> Api<'a> {
        let key = cluster.create_tenant(name).await.key;
        Api { cluster, key }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>, idempotency_key: Option<&str>) -> Answer {
        let mut request = self
            .cluster
            .http
            .request(method, self.cluster.url(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Answer {
            status,
            content_type,
            location,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), None).await
    }

    async fn act(&self, path: &str) -> Answer {
        self.call(Method::POST, path, None, None).await
    }

    /// A new conversation of a new web contact; returns its id.
    async fn conversation(&self, visitor: &str) -> String {
        let contact = self
            .post(
                "/v1/contacts",
                json!({"identity": {"channel": "web", "external_id": visitor}}),
            )
            .await
            .expect(StatusCode::CREATED);
        let conversation = self
            .post(
                "/v1/conversations",
                json!({"contact_id": contact["id"], "channel": "web"}),
            )
            .await
            .expect(StatusCode::CREATED);
        conversation["id"].as_str().expect("id").to_owned()
    }

    async fn say(&self, conversation_id: &str, text: &str) {
        self.post(
            &format!("/v1/conversations/{conversation_id}/messages"),
            json!({"role": "customer", "text": text}),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// The endpoint's messages, by id.
    async fn messages(&self, endpoint_id: &str, query: &str) -> BTreeMap<String, Value> {
        let list = self
            .get(&format!("/v1/webhooks/endpoints/{endpoint_id}/messages?{query}"))
            .await
            .expect(StatusCode::OK);
        list["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| (m["id"].as_str().expect("id").to_owned(), m.clone()))
            .collect()
    }
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `time` as RFC 3339.
fn rfc3339(time: SystemTime) -> String {
    prost_types::Timestamp::from(time).to_string()
}

fn with_key<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().expect("metadata"));
    request
}

#[tokio::test]
async fn webhook_routes_require_an_api_key() {
    let cluster = Cluster::start().await;
    for (method, path) in [
        (Method::POST, "/v1/webhooks/endpoints"),
        (Method::GET, "/v1/webhooks/endpoints"),
        (Method::GET, "/v1/webhooks/endpoints/whk_1"),
        (Method::PATCH, "/v1/webhooks/endpoints/whk_1"),
        (Method::DELETE, "/v1/webhooks/endpoints/whk_1"),
        (Method::POST, "/v1/webhooks/endpoints/whk_1/enable"),
        (Method::POST, "/v1/webhooks/endpoints/whk_1/disable"),
        (Method::POST, "/v1/webhooks/endpoints/whk_1/rotate-secret"),
        (Method::GET, "/v1/webhooks/endpoints/whk_1/messages"),
        (Method::GET, "/v1/webhooks/endpoints/whk_1/attempts"),
        (Method::GET, "/v1/webhooks/endpoints/whk_1/messages/msg_1/attempts"),
        (Method::POST, "/v1/webhooks/endpoints/whk_1/replay"),
        (Method::GET, "/v1/webhooks/event-types"),
    ] {
        for key in [None, Some("yy_not-a-key")] {
            let mut request = cluster.http.request(method.clone(), cluster.url(path)).json(&json!({}));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} {key:?}");
            let problem: Value = response.json().await.expect("problem");
            assert_eq!(problem["type"], "/problems/unauthorized", "{method} {path}");
        }
    }
    cluster.stop().await;
}

#[tokio::test]
async fn bad_endpoint_settings_and_queries_are_problems_naming_the_field() {
    let cluster = Cluster::start_with_webhooks(false).await;
    let api = Api::new(&cluster, "Strict").await;
    let (_receiver, url) = Receiver::start().await;
    let create = |body: Value| api.post("/v1/webhooks/endpoints", body);

    for (body, field) in [
        (json!({"url": "http://10.0.0.1/hook", "event_types": ["*"]}), "url:"),
        (json!({"url": "ftp://example.com/hook", "event_types": ["*"]}), "url:"),
        (json!({"url": url, "event_types": []}), "event_types:"),
        (json!({"url": url, "event_types": ["nothing.*"]}), "event_types[0]"),
        (
            json!({"url": url, "event_types": ["*"], "headers": {"webhook-id": "x"}}),
            "headers[",
        ),
        (
            json!({"url": url, "event_types": ["*"], "secret": "not-a-secret"}),
            "secret:",
        ),
        (json!({"url": url, "evnt_types": ["*"]}), "evnt_types"),
        (json!({"event_types": ["*"]}), "url"),
    ] {
        let detail = create(body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(detail.contains(field), "{body}: {detail}");
    }

    // A retry with the same Idempotency-Key names the same endpoint, but the secret is shown once.
    let body = json!({"url": url, "event_types": ["message.created"], "description": "first"});
    let first = api
        .call(
            Method::POST,
            "/v1/webhooks/endpoints",
            Some(body.clone()),
            Some("create-1"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#?}", first.body);
    let id = first.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        first.location.as_deref(),
        Some(format!("/v1/webhooks/endpoints/{id}").as_str())
    );
    assert!(first.body["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    let retried = api
        .call(Method::POST, "/v1/webhooks/endpoints", Some(body), Some("create-1"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(retried["id"], id.as_str());
    assert!(retried.get("secret").is_none(), "{retried:#}");
    let listed = api.get("/v1/webhooks/endpoints").await.expect(StatusCode::OK);
    assert_eq!(listed["endpoints"].as_array().map(Vec::len), Some(1), "{listed:#}");
    assert!(listed["endpoints"][0].get("secret").is_none());

    let endpoint = format!("/v1/webhooks/endpoints/{id}");
    let detail = api
        .call(
            Method::PATCH,
            &endpoint,
            Some(json!({"url": "http://169.254.169.254/"})),
            None,
        )
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert!(detail.starts_with("url:"), "{detail}");
    api.call(Method::PATCH, &endpoint, Some(json!({"enabled": false})), None)
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    let patched = api
        .call(
            Method::PATCH,
            &endpoint,
            Some(json!({"event_types": ["conversation.*"]})),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(patched["event_types"], json!(["conversation.*"]));
    assert_eq!(patched["description"], "first", "left out, kept");

    for (query, field) in [
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("stauts=failed", "stauts"),
    ] {
        let detail = api
            .get(&format!("{endpoint}/messages?{query}"))
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(detail.contains(field), "{query}: {detail}");
    }
    for (body, field) in [
        (json!({}), "message_id"),
        (
            json!({"message_id": "msg_1", "since": "2025-05-20T00:00:00Z"}),
            "message_id",
        ),
        (json!({"since": "last week"}), "since"),
        (json!({"message_id": "msg_1", "only_failed": true}), "only_failed"),
    ] {
        let detail = api
            .post(&format!("{endpoint}/replay"), body.clone())
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        assert!(detail.starts_with(field), "{body}: {detail}");
    }
    api.post(&format!("{endpoint}/replay"), json!({"message_id": "msg_nothing"}))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    api.get("/v1/webhooks/endpoints/whk_nothing")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    api.get(&format!("{endpoint}/messages/msg_nothing/attempts"))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");

    let catalogue = api.get("/v1/webhooks/event-types").await.expect(StatusCode::OK);
    let types = catalogue["event_types"].as_array().expect("event types");
    let created = types
        .iter()
        .find(|t| t["name"] == "message.created")
        .expect("message.created in the catalogue");
    assert_eq!(created["version"], 1);
    assert!(created["schema"].is_object(), "the schema is JSON, not text");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/event-schemas.json"))
            .expect("docs/event-schemas.json"),
    )
    .expect("JSON");
    let committed_text = committed.to_string();
    for event_type in types {
        let name = event_type["name"].as_str().expect("name");
        assert!(
            committed_text.contains(name),
            "{name} is not in docs/event-schemas.json"
        );
    }

    api.call(Method::DELETE, &endpoint, None, None)
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get(&endpoint)
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    cluster.stop().await;
}

#[tokio::test]
async fn events_are_delivered_signed_and_replay_redelivers_exactly_the_requested_set() {
    let cluster = Cluster::start_with_webhooks(false).await;
    let api = Api::new(&cluster, "Hooks").await;
    let (receiver, url) = Receiver::start().await;
    let before_events = rfc3339(SystemTime::now() - Duration::from_secs(1));

    let created = api
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": url, "event_types": ["conversation.*", "message.created"],
                   "description": "CRM timeline", "headers": {"x-team": "support"}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let secret = created["secret"].as_str().expect("secret").to_owned();
    receiver.trust(&secret);
    let endpoint_id = created["id"].as_str().expect("id").to_owned();
    assert!(endpoint_id.starts_with("whk_"));
    assert_eq!(created["enabled"], true);
    let endpoint = format!("/v1/webhooks/endpoints/{endpoint_id}");
    let mut fetched = api.get(&endpoint).await.expect(StatusCode::OK);
    fetched["pending_messages"] = created["pending_messages"].clone();
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(fetched, expected);

    let conversation = api.conversation("visitor-hooks").await;
    for text in ["hello", "please-fail one", "please-fail two", "thanks"] {
        api.say(&conversation, text).await;
    }

    // conversation.created and four message.created: the two that say "please-fail" are refused
    // twice (the first attempt and the one retry of the schedule) and given up; the rest are
    // delivered at once.
    let failed = eventually("two messages to fail for good", || async {
        let failed = api.messages(&endpoint_id, "status=failed").await;
        (failed.len() == 2).then_some(failed)
    })
    .await;
    let all = eventually("the others to be delivered", || async {
        let all = api.messages(&endpoint_id, "").await;
        let delivered = all.values().filter(|m| m["status"] == "delivered").count();
        (all.len() >= 5 && delivered == all.len() - 2).then_some(all)
    })
    .await;
    let deliveries = receiver.deliveries();
    assert!(!deliveries.is_empty());
    for delivery in &deliveries {
        assert_eq!(
            delivery.signed_by,
            [0],
            "every delivery is signed with the secret: {delivery:?}"
        );
        assert!(all.contains_key(&delivery.id), "{} is a listed message", delivery.id);
    }
    let types: Vec<&str> = all.values().filter_map(|m| m["event_type"].as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "message.created").count(),
        4,
        "{types:?}"
    );
    assert!(types.contains(&"conversation.created"), "{types:?}");
    for (id, message) in &failed {
        assert_eq!(message["attempts"], 2, "{message:#}");
        assert!(message.get("next_attempt_at").is_none(), "{message:#}");
        assert_eq!(receiver.counts()[id], 2);
    }
    let with_payload = api.messages(&endpoint_id, "with_payload=true&status=failed").await;
    for message in with_payload.values() {
        assert!(
            message["payload"]["data"].to_string().contains("please-fail"),
            "{message:#}"
        );
    }
    // Attempts of one failed message: newest first, with the receiver's answer.
    let failed_id = failed.keys().next().expect("a failed message").clone();
    let attempts = api
        .get(&format!("{endpoint}/messages/{failed_id}/attempts"))
        .await
        .expect(StatusCode::OK);
    let attempts = attempts["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["attempt"], 2);
    assert_eq!(attempts[1]["attempt"], 1);
    for attempt in &attempts {
        assert_eq!(attempt["message_id"], failed_id.as_str());
        assert_eq!(attempt["status_code"], 500);
        assert_eq!(attempt["delivered"], false);
        assert_eq!(attempt["response_excerpt"], "receiver says no");
        assert!(attempt["latency_ms"].is_u64());
    }
    assert!(
        attempts[1]["next_attempt_at"].is_string(),
        "the first attempt scheduled a retry"
    );
    assert!(attempts[0].get("next_attempt_at").is_none(), "the last did not");
    let latest = api
        .get(&format!("{endpoint}/attempts?limit=3"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(latest["attempts"].as_array().map(Vec::len), Some(3));

    // From here on the receiver accepts everything; each replay must add exactly its set.
    *receiver.failing.lock().unwrap() = false;
    let delivered_id = all
        .iter()
        .find(|(_, m)| m["status"] == "delivered")
        .map(|(id, _)| id.clone())
        .expect("a delivered message");
    let replay_path = format!("{endpoint}/replay");
    let replay = |body: Value| api.post(&replay_path, body);
    let settle_and_count = |expected: BTreeMap<String, usize>| {
        let receiver = receiver.clone();
        async move {
            eventually("the replayed deliveries", || async {
                let counts = receiver.counts();
                (counts == expected).then_some(())
            })
            .await;
            // Nothing beyond the requested set arrives later either.
            tokio::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(receiver.counts(), expected);
        }
    };

    let mut expected_counts = receiver.counts();
    let one = replay(json!({"message_id": delivered_id})).await.expect(StatusCode::OK);
    assert_eq!(one["message_ids"], json!([delivered_id]));
    *expected_counts.get_mut(&delivered_id).unwrap() += 1;
    settle_and_count(expected_counts.clone()).await;

    let only_failed = replay(json!({"since": before_events, "only_failed": true}))
        .await
        .expect(StatusCode::OK);
    let mut replayed: Vec<String> = only_failed["message_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    replayed.sort();
    assert_eq!(replayed, failed.keys().cloned().collect::<Vec<_>>());
    for id in &replayed {
        *expected_counts.get_mut(id).unwrap() += 1;
    }
    settle_and_count(expected_counts.clone()).await;
    eventually("the failed messages to be delivered", || async {
        api.messages(&endpoint_id, "status=failed")
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    let everything = replay(json!({"since": before_events})).await.expect(StatusCode::OK);
    let mut replayed: Vec<String> = everything["message_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    replayed.sort();
    assert_eq!(replayed, all.keys().cloned().collect::<Vec<_>>());
    for id in &replayed {
        *expected_counts.get_mut(id).unwrap() += 1;
    }
    settle_and_count(expected_counts.clone()).await;
    // Replays keep the message id, and every one of them was signed.
    assert!(receiver.deliveries().iter().all(|d| d.signed_by == [0]));

    // Nothing made since a time in the future: an empty set, nothing delivered.
    let future = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let none = replay(json!({"since": future})).await.expect(StatusCode::OK);
    assert_eq!(none["message_ids"], json!([]));

    // Rotation: the new secret and, for a day, the previous one both sign each delivery.
    let rotated = api
        .act(&format!("{endpoint}/rotate-secret"))
        .await
        .expect(StatusCode::OK);
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    let expires = rotated["previous_secret_expires_at"].as_str().expect("expiry");
    assert!(
        expires > rfc3339(SystemTime::now() + Duration::from_secs(23 * 3600)).as_str(),
        "{expires}"
    );
    receiver.trust(&new_secret);
    let seen = receiver.deliveries().len();
    api.say(&conversation, "after the rotation").await;
    let after = eventually("a delivery after the rotation", || async {
        receiver.deliveries().get(seen).cloned()
    })
    .await;
    assert_eq!(after.signed_by, [0, 1], "signed with both secrets: {after:?}");
    assert!(after.body.to_string().contains("after the rotation"));

    // A disabled endpoint gets nothing for events while it is disabled.
    let disabled = api.act(&format!("{endpoint}/disable")).await.expect(StatusCode::OK);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["disabled_reason"], "requested");
    let before = api.messages(&endpoint_id, "").await.len();
    api.say(&conversation, "while disabled").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.messages(&endpoint_id, "").await.len(), before);
    let enabled = api.act(&format!("{endpoint}/enable")).await.expect(StatusCode::OK);
    assert_eq!(enabled["enabled"], true);
    assert!(enabled.get("disabled_reason").is_none(), "{enabled:#}");
    cluster.stop().await;
}

#[tokio::test]
async fn the_webhook_service_is_served_over_grpc_with_an_api_key() {
    let cluster = Cluster::start_with_webhooks(false).await;
    let a = cluster.create_tenant("A").await;
    let b = cluster.create_tenant("B").await;
    let (_receiver, url) = Receiver::start().await;
    let mut client: WebhookServiceClient<Channel> = WebhookServiceClient::connect(cluster.grpc_url())
        .await
        .expect("connect");

    let refused = client
        .list_endpoints(tonic::Request::new(pb::ListEndpointsRequest {}))
        .await
        .expect_err("no key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = client
        .list_endpoints(with_key("yy_not-a-key", pb::ListEndpointsRequest {}))
        .await
        .expect_err("bad key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let settings = |url: &str| pb::EndpointSettings {
        url: url.to_owned(),
        event_types: vec!["message.created".into()],
        ..Default::default()
    };
    let created = client
        .create_endpoint(with_key(
            &a.key,
            pb::CreateEndpointRequest {
                settings: Some(settings(&url)),
                ..Default::default()
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(created.secret.starts_with("whsec_"));
    let id = created.endpoint.expect("endpoint").endpoint_id;

    // The same endpoint over REST, in the key's tenant.
    let rest = cluster
        .http
        .get(cluster.url(&format!("/v1/webhooks/endpoints/{id}")))
        .bearer_auth(&a.key)
        .send()
        .await
        .expect("get");
    assert_eq!(rest.status(), StatusCode::OK);
    let rest: Value = rest.json().await.expect("endpoint");
    assert_eq!(rest["url"], url.as_str());

    // Errors keep their code and `yy-error` slug through the gateway.
    let invalid = client
        .create_endpoint(with_key(
            &a.key,
            pb::CreateEndpointRequest {
                settings: Some(settings("http://10.1.2.3/hook")),
                ..Default::default()
            },
        ))
        .await
        .expect_err("an internal address");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    assert!(invalid.message().starts_with("settings.url"), "{}", invalid.message());
    assert_eq!(
        invalid.metadata().get("yy-error").and_then(|v| v.to_str().ok()),
        Some("validation-failed")
    );

    // Tenant B sees nothing of A, even naming A's tenant in the metadata itself.
    let mut forged = with_key(
        &b.key,
        pb::GetEndpointRequest {
            endpoint_id: id.clone(),
        },
    );
    forged
        .metadata_mut()
        .insert("x-yy-tenant", a.id.parse().expect("metadata"));
    let hidden = client
        .get_endpoint(forged)
        .await
        .expect_err("another tenant's endpoint");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let hidden = client
        .replay(with_key(
            &b.key,
            pb::ReplayRequest {
                endpoint_id: id.clone(),
                since_ms: 1,
                ..Default::default()
            },
        ))
        .await
        .expect_err("another tenant's replay");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let listed = client
        .list_endpoints(with_key(&b.key, pb::ListEndpointsRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.endpoints.is_empty());
    let types = client
        .list_event_types(with_key(&b.key, pb::ListEventTypesRequest {}))
        .await
        .expect("event types")
        .into_inner();
    assert!(types.event_types.iter().any(|t| t.name == "conversation.created"));
    cluster.stop().await;
}
