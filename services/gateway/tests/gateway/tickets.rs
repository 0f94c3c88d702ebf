//! Tickets through the gateway: tickets, connectors, health and SLA policies over REST,
//! `yy.ticket.v1.TicketService` over gRPC, and the signed inbound endpoint, against real
//! conversation and ticket-sync services and a local HTTP server playing the tenant's ticket
//! system, which signs its webhooks with its own HMAC code and counts every request it gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json as AxumJson;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tonic::transport::Channel;
use yy_proto::ticket::v1 as pb;
use yy_proto::ticket::v1::ticket_service_client::TicketServiceClient;

use crate::support::{Cluster, TenantKey};

const TOKEN: &str = "helpdesk-bearer-token-5150";
const INBOUND_SECRET: &str = "helpdesk-inbound-secret-8d2f61";

/// The tenant's ticket system: stores what it is sent and counts it.
#[derive(Default)]
struct TicketSystem {
    creates: AtomicU64,
    updates: AtomicU64,
    comments: AtomicU64,
    unauthorised: AtomicU64,
    created: Mutex<Vec<Value>>,
    updated: Mutex<Vec<Value>>,
    commented: Mutex<Vec<Value>>,
}

impl TicketSystem {
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
        if !ok {
            self.unauthorised.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }

    fn counts(&self) -> (u64, u64, u64) {
        (
            self.creates.load(Ordering::SeqCst),
            self.updates.load(Ordering::SeqCst),
            self.comments.load(Ordering::SeqCst),
        )
    }
}

type Shared = Arc<TicketSystem>;

async fn create(
    State(system): State<Shared>,
    headers: HeaderMap,
    AxumJson(body): AxumJson<Value>,
) -> (AxumStatus, AxumJson<Value>) {
    system.creates.fetch_add(1, Ordering::SeqCst);
    if !system.authorised(&headers) {
        return (AxumStatus::UNAUTHORIZED, AxumJson(json!({})));
    }
    let mut created = system.created.lock().unwrap();
    created.push(body);
    let id = format!("HD-{}", created.len());
    (AxumStatus::CREATED, AxumJson(json!({"ticket": {"id": id}})))
}

async fn update(
    State(system): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AxumJson(body): AxumJson<Value>,
) -> AxumStatus {
    system.updates.fetch_add(1, Ordering::SeqCst);
    if !system.authorised(&headers) {
        return AxumStatus::UNAUTHORIZED;
    }
    system.updated.lock().unwrap().push(json!({"id": id, "body": body}));
    AxumStatus::OK
}

async fn comment(
    State(system): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    AxumJson(body): AxumJson<Value>,
) -> AxumStatus {
    system.comments.fetch_add(1, Ordering::SeqCst);
    if !system.authorised(&headers) {
        return AxumStatus::UNAUTHORIZED;
    }
    system.commented.lock().unwrap().push(json!({"id": id, "body": body}));
    AxumStatus::CREATED
}

async fn start_ticket_system() -> (Shared, String) {
    let system: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/api/tickets", axum::routing::post(create))
        .route("/api/tickets/{id}", axum::routing::put(update))
        .route("/api/tickets/{id}/comments", axum::routing::post(comment))
        .with_state(system.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (system, url)
}

/// The signature header value the ticket system sends: `sha256=` and the hex HMAC-SHA256 of the
/// body, computed here independently of the service's own code.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("sha256={}", tag.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn connector_settings(base_url: &str) -> Value {
    json!({
        "name": "Helpdesk",
        "kind": "ticket_system",
        "base_url": base_url,
        "auth": {"bearer": {"token": TOKEN}},
        "inbound_secret": INBOUND_SECRET,
        "ticket_system": {
            "create": {"method": "POST", "path": "/api/tickets",
                "body": "{\"ticket\": {\"subject\": \"{{ticket.subject}}\", \"priority\": \"{{mapped.priority}}\", \"status\": \"{{mapped.status}}\", \"tags\": {{json:ticket.tags}}, \"order\": \"{{ticket.custom_fields.order_id}}\", \"requester\": \"{{ticket.requester.email}}\", \"external_ref\": \"{{ticket.id}}\"}}"},
            "update": {"method": "PUT", "path": "/api/tickets/{{external.id}}",
                "body": "{\"ticket\": {\"status\": \"{{mapped.status}}\", \"priority\": \"{{mapped.priority}}\"}}"},
            "comment": {"method": "POST", "path": "/api/tickets/{{external.id}}/comments",
                "body": "{\"body\": \"{{comment.body}}\", \"public\": {{json:comment.public}}}"},
            "external_id_pointer": "/ticket/id",
            "status_map": {"new": "NEW", "open": "OPEN", "pending": "WAITING", "solved": "RESOLVED", "closed": "CLOSED"},
            "priority_map": {"high": "P1", "normal": "P3"},
            "inbound": {"external_id_pointer": "/ticket/id", "status_pointer": "/ticket/status",
                        "comment_pointer": "/comment/body"}
        }
    })
}

/// One answer, its body kept as text too so that a test can look for secrets in it.
struct Answer {
    status: StatusCode,
    text: String,
    body: Value,
}

impl Answer {
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.body
    }

    fn expect_problem(&self, status: StatusCode, slug: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["type"], format!("/problems/{slug}"), "{}", self.text);
        &self.body
    }
}

/// Calls the REST API with a tenant's key, keeping every answer it got.
struct Api<'a> {
    cluster: &'a Cluster,
    tenant: TenantKey,
    answers: Mutex<Vec<String>>,
}

impl<'a> Api<'a> {
    async fn new(cluster: &'a Cluster, name: &str) -> Api<'a> {
        Api {
            cluster,
            tenant: cluster.create_tenant(name).await,
            answers: Mutex::default(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .cluster
            .http
            .request(method, self.cluster.url(path))
            .bearer_auth(&self.tenant.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        self.answers.lock().unwrap().push(text.clone());
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    fn answers(&self) -> Vec<String> {
        self.answers.lock().unwrap().clone()
    }
}

/// POSTs `body` to the inbound endpoint, signed with `signature` when given, without any API key.
async fn inbound(
    cluster: &Cluster,
    tenant_id: &str,
    connector_id: &str,
    body: &[u8],
    signature: Option<String>,
) -> Answer {
    let mut request = cluster
        .http
        .post(cluster.url(&format!("/v1/inbound/tickets/{tenant_id}/{connector_id}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-signature", signature);
    }
    let response = request.send().await.expect("inbound request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, text, body }
}

/// Polls `check` until it returns something, for up to ten seconds.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open_conversation(api: &Api<'_>, email: &str) -> (String, String) {
    let contact = api
        .post(
            "/v1/contacts",
            json!({"identity": {"channel": "email", "external_id": email}}),
        )
        .await;
    let contact_id = contact.body["id"].as_str().expect("contact id").to_owned();
    let conversation = api
        .post("/v1/conversations", json!({"contact_id": contact_id, "channel": "web"}))
        .await
        .expect(StatusCode::CREATED);
    (
        contact_id,
        conversation["id"].as_str().expect("conversation id").to_owned(),
    )
}

#[tokio::test]
async fn a_ticket_from_a_conversation_reaches_the_ticket_system_and_its_signed_updates_come_back_without_echo() {
    let cluster = Cluster::start_with_tickets().await;
    let (system, base_url) = start_ticket_system().await;
    let acme = Api::new(&cluster, "Acme").await;
    let tenant_id = acme.tenant.id.clone();

    let connector = acme
        .post("/v1/connectors", connector_settings(&base_url))
        .await
        .expect(StatusCode::CREATED);
    let connector_id = connector["id"].as_str().expect("connector id").to_owned();
    assert_eq!(connector["auth"], json!({"kind": "bearer"}));
    assert_eq!(connector["has_inbound_secret"], true);
    assert_eq!(
        connector["inbound_path"],
        format!("/v1/inbound/tickets/{tenant_id}/{connector_id}")
    );
    assert_eq!(connector["ticket_system"]["priority_map"]["high"], "P1");

    // An agent turns the conversation into a ticket.
    let (contact_id, conversation_id) = open_conversation(&acme, "ada@example.com").await;
    let created = acme
        .post(
            &format!("/v1/conversations/{conversation_id}/tickets"),
            json!({
                "subject": "Parcel 42 never arrived",
                "description": "Waited 12 days",
                "priority": "high",
                "tags": ["shipping"],
                "custom_fields": {"order_id": "42"},
                "created_by": {"kind": "agent", "id": "agt_7"}
            }),
        )
        .await;
    let ticket = created.expect(StatusCode::CREATED);
    let ticket_id = ticket["id"].as_str().expect("ticket id").to_owned();
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["conversation_ids"], json!([conversation_id]));
    assert_eq!(ticket["requester"]["contact_id"], contact_id.as_str());
    assert_eq!(ticket["created_by"], json!({"kind": "agent", "id": "agt_7"}));

    // It reaches the ticket system once, with the fields mapped as the connector says.
    let sent = eventually("the ticket system to get the ticket", || async {
        system.created.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(
        sent,
        json!({"ticket": {"subject": "Parcel 42 never arrived", "priority": "P1", "status": "NEW",
                          "tags": ["shipping"], "order": "42", "requester": "ada@example.com",
                          "external_ref": ticket_id}})
    );
    let path = format!("/v1/tickets/{ticket_id}");
    let linked = eventually("the external id", || async {
        let ticket = acme.get(&path).await.expect(StatusCode::OK);
        (ticket["external"][0]["external_id"] == "HD-1" && ticket["external"][0]["pending"] == 0).then_some(ticket)
    })
    .await;
    assert_eq!(linked["external"][0]["connector_id"], connector_id.as_str());

    // A local change is sent to it.
    acme.post(&format!("{path}/status"), json!({"status": "open"}))
        .await
        .expect(StatusCode::OK);
    eventually("the update to reach the ticket system", || async {
        (system.updates.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(
        system.updated.lock().unwrap()[0],
        json!({"id": "HD-1", "body": {"ticket": {"status": "OPEN", "priority": "P1"}}})
    );

    // Reconfiguring without the secrets keeps them: the next webhook still verifies.
    let mut again = connector_settings(&base_url);
    again["auth"] = json!({"bearer": {}});
    again.as_object_mut().expect("object").remove("inbound_secret");
    let reconfigured = acme
        .call(Method::PUT, &format!("/v1/connectors/{connector_id}"), Some(again))
        .await
        .expect(StatusCode::OK);
    assert_eq!(reconfigured["has_inbound_secret"], true);

    // The ticket system resolves it and says so, signed, without any API key.
    let update = serde_json::to_vec(&json!({
        "ticket": {"id": "HD-1", "status": "RESOLVED"},
        "comment": {"body": "Refund issued."}
    }))
    .expect("json");
    let answer = inbound(
        &cluster,
        &tenant_id,
        &connector_id,
        &update,
        Some(sign(INBOUND_SECRET, &update)),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(answer, json!({"ticket_id": ticket_id, "changed": true}));
    let followed = acme.get(&path).await.expect(StatusCode::OK);
    assert_eq!(followed["status"], "solved");
    let comment = followed["comments"]
        .as_array()
        .expect("comments")
        .last()
        .cloned()
        .expect("a comment");
    assert_eq!(comment["body"], "Refund issued.");
    assert_eq!(comment["origin"], connector_id.as_str());
    assert_eq!(comment["author"]["kind"], "connector");

    // Delivered twice, it is one change.
    let answer = inbound(
        &cluster,
        &tenant_id,
        &connector_id,
        &update,
        Some(sign(INBOUND_SECRET, &update)),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(answer["changed"], false);

    // Nothing of it is echoed back. A later local comment is sent after anything scheduled
    // before it for this ticket and connector, so once it has arrived, an echo would have too.
    acme.post(
        &format!("{path}/comments"),
        json!({"body": "Closing the loop", "public": true}),
    )
    .await
    .expect(StatusCode::CREATED);
    eventually("the local comment to reach the ticket system", || async {
        (system.comments.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(system.counts(), (1, 1, 1), "creates, updates, comments");
    assert_eq!(
        system.commented.lock().unwrap()[0],
        json!({"id": "HD-1", "body": {"body": "Closing the loop", "public": true}})
    );
    assert_eq!(system.unauthorised.load(Ordering::SeqCst), 0);

    // The history shows where the change came from.
    let history = acme.get(&format!("{path}/history")).await.expect(StatusCode::OK);
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["type"], "created");
    let at = entries
        .iter()
        .position(|e| e["type"] == "updated" && e["change"]["status"] == "solved")
        .expect("the inbound status change");
    assert_eq!(entries[at]["change"]["origin"], connector_id.as_str());
    assert_eq!(entries[at]["change"]["previous_status"], "open");
    assert!(entries.iter().any(|e| e["type"] == "sync_succeeded"));
    let scheduled_after: Vec<_> = entries[at..]
        .iter()
        .filter(|e| e["type"] == "sync_scheduled")
        .map(|e| e["change"]["operation"].clone())
        .collect();
    assert_eq!(
        scheduled_after,
        [json!("comment")],
        "only the local comment was scheduled after it"
    );

    // A wrong signature, a missing one, another connector, another tenant and a tenant that is
    // no token at all are refused alike, revealing nothing.
    let refused = inbound(
        &cluster,
        &tenant_id,
        &connector_id,
        &update,
        Some(sign("not-the-secret-at-all", &update)),
    )
    .await;
    let problem = refused.expect_problem(StatusCode::UNAUTHORIZED, "unauthorized").clone();
    for (tenant, connector, signature) in [
        (tenant_id.as_str(), connector_id.as_str(), None),
        (
            tenant_id.as_str(),
            "cnx_0000000000000000000000000000dead",
            Some(sign(INBOUND_SECRET, &update)),
        ),
        (
            "ten_0000000000000000000000000000dead",
            connector_id.as_str(),
            Some(sign(INBOUND_SECRET, &update)),
        ),
        ("ten dead", connector_id.as_str(), Some(sign(INBOUND_SECRET, &update))),
    ] {
        let answer = inbound(&cluster, tenant, connector, &update, signature).await;
        assert_eq!(
            (answer.status, &answer.body),
            (StatusCode::UNAUTHORIZED, &problem),
            "{tenant} {connector}"
        );
    }
    // Once signed, a refusal is the sender's to know: a ticket this connector never received.
    let stranger = serde_json::to_vec(&json!({"ticket": {"id": "HD-404", "status": "RESOLVED"}})).expect("json");
    inbound(
        &cluster,
        &tenant_id,
        &connector_id,
        &stranger,
        Some(sign(INBOUND_SECRET, &stranger)),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND, "not-found");
    let too_large = vec![b' '; (1 << 20) + 1];
    inbound(
        &cluster,
        &tenant_id,
        &connector_id,
        &too_large,
        Some(sign(INBOUND_SECRET, &too_large)),
    )
    .await
    .expect_problem(StatusCode::PAYLOAD_TOO_LARGE, "request-too-large");
    assert_eq!(acme.get(&path).await.expect(StatusCode::OK)["status"], "solved");

    // The connector's health counts its calls and the refused webhook.
    let health = acme
        .get(&format!("/v1/connectors/{connector_id}/health"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(health["state"], "ok");
    assert!(health["successes"].as_u64().expect("successes") >= 3, "{health}");
    assert_eq!(health["pending_syncs"], 0);
    assert_eq!(health["inbound_refused"], 1);

    // No answer ever showed a secret.
    acme.get("/v1/connectors").await.expect(StatusCode::OK);
    acme.get(&format!("/v1/connectors/{connector_id}"))
        .await
        .expect(StatusCode::OK);
    for answer in acme.answers() {
        assert!(
            !answer.contains(TOKEN) && !answer.contains(INBOUND_SECRET),
            "a secret in {answer}"
        );
    }

    cluster.stop().await;
}

#[tokio::test]
async fn a_failing_ticket_system_shows_in_the_connectors_health_and_the_ticket() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    // Nothing listens there.
    let connector = acme
        .post("/v1/connectors", connector_settings("http://127.0.0.1:9"))
        .await
        .expect(StatusCode::CREATED);
    let connector_id = connector["id"].as_str().expect("id").to_owned();
    let ticket = acme
        .post("/v1/tickets", json!({"subject": "Printer on fire"}))
        .await
        .expect(StatusCode::CREATED);
    let path = format!("/v1/tickets/{}", ticket["id"].as_str().expect("id"));

    let health = eventually("the connector to fail", || async {
        let health = acme
            .get(&format!("/v1/connectors/{connector_id}/health"))
            .await
            .expect(StatusCode::OK);
        (health["consecutive_failures"].as_u64() >= Some(2)).then_some(health)
    })
    .await;
    assert_eq!(health["state"], "failing");
    assert_eq!(health["pending_syncs"], 1);
    let error = &health["recent_errors"][0];
    assert_eq!(error["operation"], "create");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{health}");
    assert!(
        error.get("http_status").is_none(),
        "unreachable, so no status: {health}"
    );
    let ticket = acme.get(&path).await.expect(StatusCode::OK);
    assert_eq!(ticket["external"][0]["pending"], 1);
    assert!(ticket["external"][0]["last_error"].is_string(), "{ticket}");

    cluster.stop().await;
}

#[tokio::test]
async fn validation_problems_name_the_field_and_other_tenants_tickets_answer_404() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    let globex = Api::new(&cluster, "Globex").await;

    for (path, body, field) in [
        ("/v1/tickets", json!({}), "subject"),
        ("/v1/tickets", json!({"subject": "x", "priority": "p1"}), "priority"),
        ("/v1/tickets", json!({"subject": ""}), "subject"),
        ("/v1/tickets", json!({"subject": "x", "tags": ["has space"]}), "tags"),
        (
            "/v1/tickets",
            json!({"subject": "x", "custom_fields": {"bad name!": "1"}}),
            "custom_fields",
        ),
        ("/v1/tickets", json!({"subject": "x", "sujet": "y"}), "sujet"),
        (
            "/v1/connectors",
            json!({"name": "X", "kind": "pager", "base_url": "https://x.example"}),
            "kind",
        ),
        (
            "/v1/connectors",
            json!({"name": "X", "kind": "ticket_system", "base_url": "https://x.example",
                   "ticket_system": {"create": {"method": "POST", "path": "/api/{{tikcet.id}}"}}}),
            "ticket_system.create.path",
        ),
        (
            "/v1/connectors",
            json!({"name": "X", "kind": "crm", "base_url": "ftp://x.example",
                   "crm": {"lookup": {"method": "GET", "path": "/c/{{contact.id}}"}}}),
            "base_url",
        ),
    ] {
        let answer = acme.post(path, body.clone()).await;
        let detail = answer.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed")["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(detail.contains(field), "{body} → {detail}");
    }
    let answer = acme.get("/v1/tickets?status=bot").await;
    assert!(
        answer.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("status")),
        "{}",
        answer.text
    );

    let ticket = acme
        .post("/v1/tickets", json!({"subject": "Invoice wrong", "priority": "urgent"}))
        .await
        .expect(StatusCode::CREATED);
    let path = format!("/v1/tickets/{}", ticket["id"].as_str().expect("id"));
    acme.post(&format!("{path}/status"), json!({"status": "solved"}))
        .await
        .expect(StatusCode::OK);
    acme.post(&format!("{path}/status"), json!({"status": "closed"}))
        .await
        .expect(StatusCode::OK);
    acme.post(&format!("{path}/status"), json!({"status": "open"}))
        .await
        .expect_problem(StatusCode::CONFLICT, "invalid-state");

    // Another tenant's ticket is not there for Globex, and its list stays its own.
    globex
        .get(&path)
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    globex
        .call(Method::PATCH, &path, Some(json!({"subject": "mine now"})))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        globex.get("/v1/tickets").await.expect(StatusCode::OK)["tickets"],
        json!([])
    );
    let own = acme.get("/v1/tickets").await.expect(StatusCode::OK);
    assert_eq!(own["tickets"][0]["subject"], "Invoice wrong");
    assert_eq!(own["tickets"][0]["status"], "closed");

    cluster.stop().await;
}

async fn grpc_client(cluster: &Cluster) -> TicketServiceClient<Channel> {
    TicketServiceClient::connect(cluster.grpc_url())
        .await
        .expect("connect to the gateway")
}

fn with_key<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().expect("metadata"));
    request
}

#[tokio::test]
async fn the_ticket_api_over_grpc_acts_within_the_keys_tenant() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    let globex = Api::new(&cluster, "Globex").await;
    let mut client = grpc_client(&cluster).await;

    let ticket = client
        .create_ticket(with_key(
            &acme.tenant.key,
            pb::CreateTicketRequest {
                subject: "Over gRPC".into(),
                priority: "low".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("create over gRPC")
        .into_inner();
    let rest = acme
        .get(&format!("/v1/tickets/{}", ticket.id))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (rest["subject"].as_str(), rest["priority"].as_str()),
        (Some("Over gRPC"), Some("low"))
    );

    // Globex's key cannot reach it, even naming Acme's tenant in the metadata itself.
    let mut spoofed = with_key(
        &globex.tenant.key,
        pb::GetTicketRequest {
            ticket_id: ticket.id.clone(),
        },
    );
    spoofed
        .metadata_mut()
        .insert("x-yy-tenant", acme.tenant.id.parse().expect("metadata"));
    let refused = client.get_ticket(spoofed).await.expect_err("not Globex's");
    assert_eq!(refused.code(), tonic::Code::NotFound);

    let unauthenticated = client
        .list_tickets(tonic::Request::new(pb::ListTicketsRequest::default()))
        .await
        .expect_err("no key");
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    // A field error names the field over gRPC too.
    let invalid = client
        .create_ticket(with_key(&acme.tenant.key, pb::CreateTicketRequest::default()))
        .await
        .expect_err("no subject");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    assert!(invalid.message().contains("subject"), "{}", invalid.message());

    cluster.stop().await;
}

const CRM_KEY: &str = "crm-api-key-31337";

#[tokio::test]
async fn a_crm_lookup_on_demand_writes_the_profile_to_the_contact_and_is_cached() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    let lookups = Arc::new(AtomicU64::new(0));
    let crm = axum::Router::new()
        .route(
            "/customers/{email}",
            axum::routing::get(
                |State(lookups): State<Arc<AtomicU64>>, Path(email): Path<String>, headers: HeaderMap| async move {
                    lookups.fetch_add(1, Ordering::SeqCst);
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(CRM_KEY) {
                        return (AxumStatus::UNAUTHORIZED, AxumJson(json!({})));
                    }
                    let tier = if email == "ada@example.com" { "vip" } else { "standard" };
                    (
                        AxumStatus::OK,
                        AxumJson(json!({"customer": {"name": "Ada Lovelace", "tier": tier}})),
                    )
                },
            ),
        )
        .with_state(lookups.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, crm).await });

    let connector = acme
        .post(
            "/v1/connectors",
            json!({
                "name": "CRM", "kind": "crm", "base_url": base_url,
                "auth": {"api_key": {"header": "X-Api-Key", "key": CRM_KEY}},
                "crm": {"lookup": {"method": "GET", "path": "/customers/{{contact.identities.email}}"},
                        "attributes": {"tier": "/customer/tier"}, "name_pointer": "/customer/name"}
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(connector["auth"], json!({"kind": "api_key", "header": "X-Api-Key"}));
    assert!(connector.get("inbound_path").is_none(), "{connector}");

    let contact = acme
        .post(
            "/v1/contacts",
            json!({"identity": {"channel": "email", "external_id": "ada@example.com"}}),
        )
        .await
        .expect(StatusCode::CREATED);
    let contact_id = contact["id"].as_str().expect("id").to_owned();
    let lookup = format!("/v1/contacts/{contact_id}/crm-profile");

    let profile = acme.post(&lookup, json!({})).await.expect(StatusCode::OK);
    assert_eq!(profile["attributes"], json!({"tier": "vip"}));
    assert_eq!(profile["name"], "Ada Lovelace");
    assert_eq!(profile["cached"], false);
    assert_eq!(profile["connector_id"], connector["id"]);
    let contact = acme
        .get(&format!("/v1/contacts/{contact_id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(contact["attributes"]["tier"], "vip");

    // Without a body the cache answers; with `refresh` the CRM is asked again.
    let response = cluster
        .http
        .post(cluster.url(&lookup))
        .bearer_auth(&acme.tenant.key)
        .send()
        .await
        .expect("lookup without a body");
    assert_eq!(response.status(), StatusCode::OK);
    let cached: Value = response.json().await.expect("json");
    assert_eq!(cached["cached"], true);
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    let refreshed = acme
        .post(&lookup, json!({"refresh": true}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(refreshed["cached"], false);
    assert_eq!(lookups.load(Ordering::SeqCst), 2);

    let health = acme
        .get(&format!(
            "/v1/connectors/{}/health",
            connector["id"].as_str().expect("id")
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (health["state"].as_str(), health["cache_hits"].as_u64()),
        (Some("ok"), Some(1))
    );
    for answer in acme.answers() {
        assert!(!answer.contains(CRM_KEY), "the CRM key in {answer}");
    }

    cluster.stop().await;
}

#[tokio::test]
async fn a_ticket_create_retried_with_the_same_idempotency_key_makes_one_ticket() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    let create = || {
        cluster
            .http
            .post(cluster.url("/v1/tickets"))
            .bearer_auth(&acme.tenant.key)
            .header("idempotency-key", "ticket-once-1")
            .json(&json!({"subject": "Charged twice"}))
            .send()
    };
    let first = create().await.expect("first");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    let again = create().await.expect("again");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(
        again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    let list = acme.get("/v1/tickets").await.expect(StatusCode::OK);
    assert_eq!(list["tickets"].as_array().map(Vec::len), Some(1));

    cluster.stop().await;
}

#[tokio::test]
async fn a_knowledge_base_feed_pushed_over_rest_is_imported_and_a_malformed_one_refused_whole() {
    let cluster = Cluster::start_with_tickets().await;
    let acme = Api::new(&cluster, "Acme").await;
    let connector = acme
        .post(
            "/v1/connectors",
            json!({
                "name": "FAQ export", "kind": "kb_feed", "base_url": "https://help.example.com",
                "kb_feed": {"push_only": true}
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(connector["kind"], "kb_feed");
    assert_eq!(connector["kb_feed"]["push_only"], true);
    let path = format!("/v1/connectors/{}/kb-feed", connector["id"].as_str().expect("id"));
    let feed = json!([
        {"id": "faq-refund", "title": "How do I get a refund", "answer": "Ask within 30 days.", "locale": "en"},
        {"id": "faq-tuihuo", "title": "怎么退货", "answer": "三十天内申请即可。", "locale": "zh-CN"}
    ]);
    let result = acme.post(&path, feed).await.expect(StatusCode::OK);
    assert_eq!(
        result,
        json!({"created": 2, "updated": 0, "unchanged": 0, "disabled": 0, "entries": 2})
    );

    let refused = acme.post(&path, json!({"entries": []})).await;
    refused.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    let invalid = acme
        .post(&path, json!([{"id": "faq-x", "title": "no answer", "locale": "en"}]))
        .await;
    invalid.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    let health = acme
        .get(&format!(
            "/v1/connectors/{}/health",
            connector["id"].as_str().expect("id")
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(health["kb_feed"]["entries"], 2, "{health}");
    assert_eq!(health["kb_feed"]["last_outcome"], "refused", "{health}");

    acme.post("/v1/connectors/cnx_unknown/kb-feed", json!([]))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    cluster.stop().await;
}
