//! The ticket-sync service end to end: a real nats-server, the conversation (and, for the CRM,
//! routing) service in-process, ticket-sync in-process or as its real binary, and real local HTTP
//! servers playing the external ticket system and the CRM, counting what reaches them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_eventlog::{EventLog, LogConfig, LogContext, NatsConfig, Payload};
use yy_proto::conversation::v1 as conv;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::routing::v1 as routing_pb;
use yy_proto::routing::v1::routing_service_client::RoutingServiceClient;
use yy_proto::ticket::v1 as pb;
use yy_proto::ticket::v1::ticket_service_client::TicketServiceClient;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, ServiceProcess, spawn_service};

const TENANT: &str = "ten_tickets";
const TOKEN: &str = "ext-bearer-token-0042";
const INBOUND_SECRET: &str = "inbound-hmac-secret-0123456789";
const CRM_KEY: &str = "crm-api-key-987654321";
const SECRET_KEY: &str = "ticket-sync-test-secret-key-0123456789";

// ---------------------------------------------------------------------------------------------
// The external ticket system.

#[derive(Default)]
struct TicketSystem {
    down: AtomicBool,
    /// Holds each create's answer this long after storing the ticket: an answer that is lost
    /// when the caller dies meanwhile.
    create_delay_ms: AtomicU64,
    create_requests: AtomicU64,
    update_requests: AtomicU64,
    comment_requests: AtomicU64,
    search_requests: AtomicU64,
    unauthorised: AtomicU64,
    tickets: Mutex<Vec<Value>>,
    by_key: Mutex<HashMap<String, usize>>,
    updates: Mutex<Vec<Value>>,
}

impl TicketSystem {
    fn created(&self) -> Vec<Value> {
        self.tickets.lock().unwrap().clone()
    }
}

type Shared = Arc<TicketSystem>;

fn authorised(system: &TicketSystem, headers: &HeaderMap) -> bool {
    let ok = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
    if !ok {
        system.unauthorised.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

async fn fake_create(
    State(system): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    system.create_requests.fetch_add(1, Ordering::SeqCst);
    if !authorised(&system, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "unauthorised"})));
    }
    if system.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "maintenance"})));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let id = {
        let mut by_key = system.by_key.lock().unwrap();
        match key.as_ref().and_then(|k| by_key.get(k)) {
            Some(&index) => index + 1,
            None => {
                let mut tickets = system.tickets.lock().unwrap();
                tickets.push(body);
                if let Some(key) = key {
                    by_key.insert(key, tickets.len() - 1);
                }
                tickets.len()
            }
        }
    };
    let delay = system.create_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    (StatusCode::CREATED, Json(json!({"ticket": {"id": id.to_string()}})))
}

async fn update_ticket(
    State(system): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    system.update_requests.fetch_add(1, Ordering::SeqCst);
    if !authorised(&system, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    if system.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    system.updates.lock().unwrap().push(json!({"id": id, "body": body}));
    StatusCode::OK
}

async fn add_comment(State(system): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    system.comment_requests.fetch_add(1, Ordering::SeqCst);
    if !authorised(&system, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    (StatusCode::CREATED, Json(json!({"comment": {"id": "c1"}})))
}

async fn search(
    State(system): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    system.search_requests.fetch_add(1, Ordering::SeqCst);
    if !authorised(&system, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    if system.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
    }
    let wanted = query.get("ref").cloned().unwrap_or_default();
    let results: Vec<Value> = system
        .created()
        .iter()
        .enumerate()
        .filter(|(_, t)| t["ticket"]["external_ref"] == wanted.as_str())
        .map(|(i, _)| json!({"id": (i + 1).to_string()}))
        .collect();
    (StatusCode::OK, Json(json!({ "results": results })))
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

async fn start_ticket_system() -> (Shared, SocketAddr) {
    let system: Shared = Arc::default();
    let router = axum::Router::new()
        .route("/api/tickets", post(fake_create))
        .route("/api/tickets/{id}", put(update_ticket))
        .route("/api/tickets/{id}/comments", post(add_comment))
        .route("/api/search", get(search))
        .with_state(system.clone());
    (system, serve(router).await)
}

// ---------------------------------------------------------------------------------------------
// The CRM.

#[derive(Default)]
struct CrmSystem {
    down: AtomicBool,
    lookups: AtomicU64,
}

async fn customer(
    State(crm): State<Arc<CrmSystem>>,
    Path(email): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    crm.lookups.fetch_add(1, Ordering::SeqCst);
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(CRM_KEY) {
        return (StatusCode::UNAUTHORIZED, Json(json!({})));
    }
    if crm.down.load(Ordering::SeqCst) {
        return (StatusCode::BAD_GATEWAY, Json(json!({"error": "down"})));
    }
    let tier = if email.starts_with("ada") { "vip" } else { "standard" };
    (
        StatusCode::OK,
        Json(json!({"customer": {"name": "Ada Lovelace", "tier": tier, "ltv": 1234.5, "open_orders": 2}})),
    )
}

async fn start_crm() -> (Arc<CrmSystem>, SocketAddr) {
    let crm: Arc<CrmSystem> = Arc::default();
    let router = axum::Router::new()
        .route("/customers/{email}", get(customer))
        .with_state(crm.clone());
    (crm, serve(router).await)
}

// ---------------------------------------------------------------------------------------------
// The cluster.

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

async fn start_ticket_sync(nats: &NatsServer, conversation: SocketAddr) -> RunningService<RunError> {
    let mut config: ServiceConfig<yy_ticket_sync::TicketSyncConfig> = ServiceConfig {
        nats: nats_config(nats),
        eventlog: log_config(),
        ..ServiceConfig::default()
    };
    config.extra.upstream.conversation = format!("http://{conversation}");
    config.extra.ticket_sync.secret_key = Secret::new(SECRET_KEY);
    config.extra.ticket_sync.retry_base_ms = 100;
    config.extra.ticket_sync.retry_max_ms = 400;
    config.extra.ticket_sync.crm_cache_ttl_secs = 120;
    let service = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_ticket_sync::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    wait_ready(&format!("http://{}/readyz", service.http), String::new).await;
    service
}

fn ticket_sync_env(conversation: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("UPSTREAM__CONVERSATION", format!("http://{conversation}")),
        ("TICKET_SYNC__SECRET_KEY", SECRET_KEY.to_owned()),
        ("TICKET_SYNC__RETRY_BASE_MS", "100".to_owned()),
        ("TICKET_SYNC__RETRY_MAX_MS", "400".to_owned()),
    ]
}

async fn start_ticket_sync_process(nats: &NatsServer, conversation: SocketAddr) -> ServiceProcess {
    let env = ticket_sync_env(conversation);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let process = ServiceProcess::start("ticket-sync", nats, &env);
    wait_ready(&process.url("/readyz"), || process.log()).await;
    process
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn as_tenant<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-yy-tenant", TENANT.parse().expect("metadata"));
    request
}

async fn tickets_client(addr: impl std::fmt::Display) -> TicketServiceClient<Channel> {
    TicketServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to ticket-sync")
}

async fn conversations_client(addr: SocketAddr) -> ConversationServiceClient<Channel> {
    ConversationServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to conversation")
}

fn template(method: &str, path: &str, body: &str) -> pb::RequestTemplate {
    pb::RequestTemplate {
        method: method.into(),
        path: path.into(),
        headers: HashMap::new(),
        body: body.into(),
    }
}

fn ticket_system_connector(base: SocketAddr) -> pb::PutConnectorRequest {
    pb::PutConnectorRequest {
        command_id: "connector-ticket-system".into(),
        connector_id: String::new(),
        name: "Helpdesk".into(),
        kind: "ticket_system".into(),
        base_url: format!("http://{base}"),
        enabled: true,
        timeout_ms: 10_000,
        auth: Some(pb::Auth {
            kind: Some(pb::auth::Kind::Bearer(pb::BearerAuth { token: TOKEN.into() })),
        }),
        inbound_secret: INBOUND_SECRET.into(),
        ticket_system: Some(pb::TicketSystemSettings {
            create: Some(template(
                "POST",
                "/api/tickets",
                r#"{"ticket": {"subject": "{{ticket.subject}}", "description": "{{ticket.description}}",
                   "priority": "{{mapped.priority}}", "status": "{{mapped.status}}", "tags": {{json:ticket.tags}},
                   "order": "{{ticket.custom_fields.order_id}}", "external_ref": "{{ticket.id}}"}}"#,
            )),
            update: Some(template(
                "PUT",
                "/api/tickets/{{external.id}}",
                r#"{"ticket": {"subject": "{{ticket.subject}}", "priority": "{{mapped.priority}}", "status": "{{mapped.status}}"}}"#,
            )),
            comment: Some(template(
                "POST",
                "/api/tickets/{{external.id}}/comments",
                r#"{"body": "{{comment.body}}", "public": {{json:comment.public}}}"#,
            )),
            search: Some(template("GET", "/api/search?ref={{ticket.id}}", "")),
            external_id_pointer: "/ticket/id".into(),
            search_id_pointer: "/results/0/id".into(),
            status_map: HashMap::from([
                ("new".to_owned(), "NEW".to_owned()),
                ("open".to_owned(), "OPEN".to_owned()),
                ("solved".to_owned(), "RESOLVED".to_owned()),
            ]),
            priority_map: HashMap::from([
                ("high".to_owned(), "P1".to_owned()),
                ("normal".to_owned(), "P3".to_owned()),
            ]),
            inbound: Some(pb::InboundMapping {
                external_id_pointer: "/ticket/id".into(),
                status_pointer: "/ticket/status".into(),
                comment_pointer: "/comment/body".into(),
                ..Default::default()
            }),
            outbound: true,
        }),
        crm: None,
        kb_feed: None,
    }
}

async fn open_conversation(conversations: &mut ConversationServiceClient<Channel>, email: &str) -> (String, String) {
    let contact = conversations
        .upsert_contact(as_tenant(conv::UpsertContactRequest {
            identity: Some(conv::ChannelIdentity {
                channel: "email".into(),
                external_id: email.into(),
            }),
            ..Default::default()
        }))
        .await
        .expect("upsert contact")
        .into_inner()
        .contact
        .expect("contact");
    let conversation = conversations
        .open_conversation(as_tenant(conv::OpenConversationRequest {
            contact_id: contact.id.clone(),
            channel: "web".into(),
            ..Default::default()
        }))
        .await
        .expect("open")
        .into_inner();
    (contact.id, conversation.id)
}

async fn create_ticket(
    tickets: &mut TicketServiceClient<Channel>,
    command_id: &str,
    conversation_id: &str,
    subject: &str,
) -> pb::Ticket {
    tickets
        .create_ticket(as_tenant(pb::CreateTicketRequest {
            command_id: command_id.into(),
            subject: subject.into(),
            description: "Order 42 never arrived, \"urgent\"".into(),
            priority: "high".into(),
            tags: vec!["shipping".into()],
            custom_fields: HashMap::from([("order_id".to_owned(), "42".to_owned())]),
            conversation_id: conversation_id.into(),
            created_by: Some(pb::Actor {
                kind: "agent".into(),
                id: "agt_7".into(),
            }),
            ..Default::default()
        }))
        .await
        .expect("create ticket")
        .into_inner()
}

async fn external_id(tickets: &mut TicketServiceClient<Channel>, ticket_id: &str, within: Duration) -> String {
    eventually("the external id", within, || {
        let mut tickets = tickets.clone();
        let ticket_id = ticket_id.to_owned();
        async move {
            let ticket = tickets
                .get_ticket(as_tenant(pb::GetTicketRequest { ticket_id }))
                .await
                .ok()?
                .into_inner();
            ticket
                .external
                .first()
                .map(|e| e.external_id.clone())
                .filter(|id| !id.is_empty())
        }
    })
    .await
}

async fn log(nats: &NatsServer) -> EventLog {
    EventLog::connect(&nats_config(nats), log_config(), "ticket-sync-test")
        .await
        .expect("connect to the log")
}

fn slug(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("yy-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_ticket_from_a_conversation_reaches_the_ticket_system_and_follows_it_without_echo() {
    let nats = NatsServer::start();
    let (system, system_addr) = start_ticket_system().await;
    let conversation = start_conversation(&nats).await;
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    let mut tickets = tickets_client(ticket_sync.grpc).await;
    let mut conversations = conversations_client(conversation.grpc).await;

    let connector = tickets
        .put_connector(as_tenant(ticket_system_connector(system_addr)))
        .await
        .expect("configure the connector")
        .into_inner();
    assert_eq!(connector.auth_kind, "bearer");
    assert!(connector.has_inbound_secret);
    // Secrets never leave in clear: not in the API, not in the log.
    let shown = format!("{connector:?}");
    assert!(!shown.contains(TOKEN) && !shown.contains(INBOUND_SECRET), "{shown}");
    let (records, _) = log(&nats)
        .await
        .load(LogContext::TICKET, TENANT, &connector.id)
        .await
        .unwrap();
    let stored = format!("{:?}", records);
    assert!(!stored.contains(TOKEN) && !stored.contains(INBOUND_SECRET));

    // A template that names an unknown variable is refused with the field.
    let mut bad = ticket_system_connector(system_addr);
    bad.command_id = "bad-connector".into();
    bad.ticket_system.as_mut().unwrap().create.as_mut().unwrap().path = "/api/{{tikcet.id}}".into();
    let refused = tickets.put_connector(as_tenant(bad)).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(slug(&refused), "validation-failed");
    assert!(
        refused.message().contains("ticket_system.create.path"),
        "{}",
        refused.message()
    );

    // An agent creates a ticket from a conversation.
    let (contact_id, conversation_id) = open_conversation(&mut conversations, "carol@example.com").await;
    let ticket = create_ticket(&mut tickets, "agent-ticket-1", &conversation_id, "Parcel lost").await;
    assert_eq!(ticket.status, "new");
    assert_eq!(ticket.conversation_ids, vec![conversation_id.clone()]);
    let requester = ticket.requester.clone().unwrap();
    assert_eq!(
        (requester.contact_id.as_str(), requester.email.as_str()),
        (contact_id.as_str(), "carol@example.com")
    );
    let missing = tickets
        .create_ticket(as_tenant(pb::CreateTicketRequest {
            subject: "No such conversation".into(),
            conversation_id: "conv_missing".into(),
            ..Default::default()
        }))
        .await
        .expect_err("an unknown conversation");
    assert_eq!((missing.code(), slug(&missing)), (tonic::Code::NotFound, "not-found"));
    let external = external_id(&mut tickets, &ticket.id, Duration::from_secs(15)).await;
    assert_eq!(external, "1");
    let created = system.created();
    assert_eq!(created.len(), 1);
    let sent = &created[0]["ticket"];
    assert_eq!(sent["subject"], "Parcel lost");
    assert_eq!(sent["description"], "Order 42 never arrived, \"urgent\"");
    assert_eq!(sent["priority"], "P1", "priority mapped");
    assert_eq!(sent["status"], "NEW", "status mapped");
    assert_eq!(sent["tags"], json!(["shipping"]));
    assert_eq!(sent["order"], "42");
    assert_eq!(sent["external_ref"], ticket.id.as_str());
    assert_eq!(system.unauthorised.load(Ordering::SeqCst), 0);
    // A retried create is the same ticket.
    let again = create_ticket(&mut tickets, "agent-ticket-1", &conversation_id, "Parcel lost").await;
    assert_eq!(again.id, ticket.id);
    let listed = tickets
        .list_tickets(as_tenant(pb::ListTicketsRequest {
            conversation_id: conversation_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tickets.len(), 1);
    // Another tenant sees nothing of it.
    let mut elsewhere = tonic::Request::new(pb::GetTicketRequest {
        ticket_id: ticket.id.clone(),
    });
    elsewhere
        .metadata_mut()
        .insert("x-yy-tenant", "ten_other".parse().unwrap());
    let hidden = tickets
        .get_ticket(elsewhere)
        .await
        .expect_err("another tenant's ticket");
    assert_eq!(hidden.code(), tonic::Code::NotFound);

    // A change here is sent; the update request shows the path to watch for echoes.
    tickets
        .update_ticket(as_tenant(pb::UpdateTicketRequest {
            ticket_id: ticket.id.clone(),
            status: Some("open".into()),
            actor: Some(pb::Actor {
                kind: "agent".into(),
                id: "agt_7".into(),
            }),
            ..Default::default()
        }))
        .await
        .expect("open the ticket");
    eventually("the update to arrive", Duration::from_secs(10), || {
        let n = system.update_requests.load(Ordering::SeqCst);
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(system.updates.lock().unwrap()[0]["body"]["ticket"]["status"], "OPEN");

    // An invalid transition names the state.
    let refused = tickets
        .update_ticket(as_tenant(pb::UpdateTicketRequest {
            ticket_id: ticket.id.clone(),
            status: Some("closed".into()),
            ..Default::default()
        }))
        .await
        .expect_err("open cannot become closed");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(slug(&refused), "invalid-state");

    // The external system resolves the ticket and says so through its signed webhook.
    let body = serde_json::to_vec(
        &json!({"ticket": {"id": external, "status": "RESOLVED"}, "comment": {"body": "Refund issued"}}),
    )
    .unwrap();
    let forged = tickets
        .receive_external_update(as_tenant(pb::ReceiveExternalUpdateRequest {
            connector_id: connector.id.clone(),
            body: body.clone(),
            signature: yy_ticket_sync::sign_inbound(b"not-the-secret-at-all", &body),
        }))
        .await
        .expect_err("a bad signature is refused");
    assert_eq!(forged.code(), tonic::Code::Unauthenticated);
    assert_eq!(slug(&forged), "invalid-signature");
    let answer = tickets
        .receive_external_update(as_tenant(pb::ReceiveExternalUpdateRequest {
            connector_id: connector.id.clone(),
            body: body.clone(),
            signature: yy_ticket_sync::sign_inbound(INBOUND_SECRET.as_bytes(), &body),
        }))
        .await
        .expect("a signed update is accepted")
        .into_inner();
    assert_eq!(answer.ticket_id, ticket.id);
    assert!(answer.changed);
    let followed = tickets
        .get_ticket(as_tenant(pb::GetTicketRequest {
            ticket_id: ticket.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(followed.status, "solved");
    assert_eq!(followed.comments.len(), 1);
    assert_eq!(followed.comments[0].origin, connector.id);
    // Delivered twice (a webhook retry), it changes nothing more.
    let replay = tickets
        .receive_external_update(as_tenant(pb::ReceiveExternalUpdateRequest {
            connector_id: connector.id.clone(),
            body: body.clone(),
            signature: yy_ticket_sync::sign_inbound(INBOUND_SECRET.as_bytes(), &body),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!replay.changed);

    // ticket.updated was recorded with the connector as its origin ...
    let history = tickets
        .get_ticket_history(as_tenant(pb::GetTicketHistoryRequest {
            ticket_id: ticket.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    use pb::ticket_history_entry::Change;
    let inbound_update = history
        .entries
        .iter()
        .find_map(|e| match &e.change {
            Some(Change::Updated(u)) if u.status.as_deref() == Some("solved") => Some(u.clone()),
            _ => None,
        })
        .expect("the status change is in the history");
    assert_eq!(inbound_update.origin, connector.id);
    assert_eq!(inbound_update.previous_status, "open");
    assert!(matches!(history.entries[0].change, Some(Change::Created(_))));
    let (records, _) = log(&nats)
        .await
        .load(LogContext::TICKET, TENANT, &ticket.id)
        .await
        .unwrap();
    assert!(records.iter().flat_map(|r| &r.commit.events).any(|e| matches!(
        &e.payload,
        Some(Payload::TicketUpdated(u)) if u.status.as_deref() == Some("solved")
    )));
    // ... and nothing was sent back: no update and no comment beyond the one made here.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(system.update_requests.load(Ordering::SeqCst), 1, "echoed back");
    assert_eq!(system.comment_requests.load(Ordering::SeqCst), 0, "echoed back");
    assert_eq!(system.create_requests.load(Ordering::SeqCst), 1);

    let health = tickets
        .get_connector_health(as_tenant(pb::GetConnectorHealthRequest {
            connector_id: connector.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.state, "ok");
    assert_eq!(health.pending_syncs, 0);
    assert_eq!(health.inbound_refused, 1);
    let metrics = reqwest::get(format!("http://{}/metrics", ticket_sync.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("yy_ticket_sync_connector_calls_total"), "{metrics}");
    assert!(!metrics.contains(TOKEN));
    ticket_sync.stop().await.unwrap();
    conversation.stop().await.unwrap();
}

#[tokio::test]
async fn the_ticket_system_down_for_a_while_gets_each_ticket_exactly_once() {
    let nats = NatsServer::start();
    let (system, system_addr) = start_ticket_system().await;
    system.down.store(true, Ordering::SeqCst);
    let conversation = start_conversation(&nats).await;
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    let mut tickets = tickets_client(ticket_sync.grpc).await;
    let mut conversations = conversations_client(conversation.grpc).await;
    let connector = tickets
        .put_connector(as_tenant(ticket_system_connector(system_addr)))
        .await
        .unwrap()
        .into_inner();
    let (_, conversation_id) = open_conversation(&mut conversations, "dave@example.com").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            create_ticket(
                &mut tickets,
                &format!("down-{i}"),
                &conversation_id,
                &format!("Ticket {i}"),
            )
            .await
            .id,
        );
    }
    // Every create is tried and retried while the system is down.
    eventually("retries while down", Duration::from_secs(15), || {
        let n = system.create_requests.load(Ordering::SeqCst) + system.search_requests.load(Ordering::SeqCst);
        async move { (n >= 15).then_some(()) }
    })
    .await;
    let health = tickets
        .get_connector_health(as_tenant(pb::GetConnectorHealthRequest {
            connector_id: connector.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.state, "failing");
    assert_eq!(health.pending_syncs, 5);
    assert!(health.recent_errors[0].http_status == 503, "{health:?}");
    let pending = tickets
        .get_ticket(as_tenant(pb::GetTicketRequest {
            ticket_id: ids[0].clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(pending.external[0].last_error.contains("503"), "{pending:?}");

    system.down.store(false, Ordering::SeqCst);
    let mut external = Vec::new();
    for id in &ids {
        external.push(external_id(&mut tickets, id, Duration::from_secs(15)).await);
    }
    let created = system.created();
    assert_eq!(created.len(), 5, "each ticket exactly once: {created:?}");
    let mut refs: Vec<&str> = created
        .iter()
        .map(|t| t["ticket"]["external_ref"].as_str().unwrap())
        .collect();
    refs.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(refs, expected);
    external.sort();
    external.dedup();
    assert_eq!(external.len(), 5);
    let health = tickets
        .get_connector_health(as_tenant(pb::GetConnectorHealthRequest {
            connector_id: connector.id,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((health.state.as_str(), health.pending_syncs), ("ok", 0));
    ticket_sync.stop().await.unwrap();
    conversation.stop().await.unwrap();
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_create_still_creates_the_ticket_once() {
    let nats = NatsServer::start();
    let (system, system_addr) = start_ticket_system().await;
    // The system stores the ticket, then takes long to answer: the process dies meanwhile.
    system.create_delay_ms.store(10_000, Ordering::SeqCst);
    let conversation = start_conversation(&nats).await;
    let process = start_ticket_sync_process(&nats, conversation.grpc).await;
    let mut tickets = tickets_client(format!("127.0.0.1:{}", process.grpc)).await;
    let mut conversations = conversations_client(conversation.grpc).await;
    tickets
        .put_connector(as_tenant(ticket_system_connector(system_addr)))
        .await
        .unwrap();
    let (_, conversation_id) = open_conversation(&mut conversations, "erin@example.com").await;
    let ticket = create_ticket(&mut tickets, "restart-1", &conversation_id, "Broken blender").await;
    eventually("the create to reach the system", Duration::from_secs(10), || {
        let n = system.create_requests.load(Ordering::SeqCst);
        async move { (n == 1).then_some(()) }
    })
    .await;
    process.signal("KILL");
    drop(process);
    system.create_delay_ms.store(0, Ordering::SeqCst);

    let process = start_ticket_sync_process(&nats, conversation.grpc).await;
    let mut tickets = tickets_client(format!("127.0.0.1:{}", process.grpc)).await;
    let external = external_id(&mut tickets, &ticket.id, Duration::from_secs(20)).await;
    assert_eq!(external, "1");
    assert_eq!(system.created().len(), 1, "created twice: {:?}", system.created());
    assert_eq!(system.search_requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        system.create_requests.load(Ordering::SeqCst),
        1,
        "the restart searched instead of creating"
    );
    let history = tickets
        .get_ticket_history(as_tenant(pb::GetTicketHistoryRequest {
            ticket_id: ticket.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let reconciled = history.entries.iter().any(|e| {
        matches!(&e.change, Some(pb::ticket_history_entry::Change::SyncSucceeded(s)) if s.reconciled && s.external_id == "1")
    });
    assert!(reconciled, "{history:?}");
    conversation.stop().await.unwrap();
}

#[tokio::test]
async fn a_vip_tier_from_the_crm_steers_routing_is_cached_and_a_crm_outage_is_invisible() {
    let nats = NatsServer::start();
    let (crm, crm_addr) = start_crm().await;
    let conversation = start_conversation(&nats).await;
    let mut routing_config: ServiceConfig<yy_routing::RoutingConfig> = ServiceConfig {
        nats: nats_config(&nats),
        eventlog: log_config(),
        ..ServiceConfig::default()
    };
    routing_config.extra.upstream.conversation = format!("http://{}", conversation.grpc);
    let routing = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_routing::run(routing_config, Listeners { http, grpc }, shutdown)
    })
    .await;
    wait_ready(&format!("http://{}/readyz", routing.http), String::new).await;
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    let mut tickets = tickets_client(ticket_sync.grpc).await;
    let mut conversations = conversations_client(conversation.grpc).await;
    let mut router = RoutingServiceClient::connect(format!("http://{}", routing.grpc))
        .await
        .unwrap();
    router
        .put_rules(as_tenant(routing_pb::PutRulesRequest {
            rules_json: r#"{"version": 1, "rules": [
                {"name": "vip", "when": {"contact_attributes": {"tier": {"one_of": ["vip"]}}}, "then": {"route": "queue", "queue": "vip"}},
                {"name": "default", "then": {"route": "bot"}}]}"#
                .into(),
        }))
        .await
        .expect("rules");
    let crm_connector = tickets
        .put_connector(as_tenant(pb::PutConnectorRequest {
            command_id: "crm".into(),
            name: "CRM".into(),
            kind: "crm".into(),
            base_url: format!("http://{crm_addr}"),
            enabled: true,
            auth: Some(pb::Auth {
                kind: Some(pb::auth::Kind::ApiKey(pb::ApiKeyAuth {
                    header: "X-Api-Key".into(),
                    key: CRM_KEY.into(),
                })),
            }),
            crm: Some(pb::CrmSettings {
                lookup: Some(template("GET", "/customers/{{contact.identities.email}}", "")),
                attributes: HashMap::from([
                    ("tier".to_owned(), "/customer/tier".to_owned()),
                    ("lifetime_value".to_owned(), "/customer/ltv".to_owned()),
                    ("open_orders".to_owned(), "/customer/open_orders".to_owned()),
                ]),
                name_pointer: "/customer/name".into(),
                summary: None,
            }),
            ..Default::default()
        }))
        .await
        .expect("configure the CRM")
        .into_inner();

    // A conversation opens: the profile lands on the contact, and routing sees the tier.
    let (ada, first) = open_conversation(&mut conversations, "ada@example.com").await;
    let contact = eventually("the CRM profile on the contact", Duration::from_secs(15), || {
        let mut conversations = conversations.clone();
        let ada = ada.clone();
        async move {
            let contact = conversations
                .get_contact(as_tenant(conv::GetContactRequest { contact_id: ada }))
                .await
                .ok()?
                .into_inner();
            (contact.attributes.get("tier").map(String::as_str) == Some("vip")).then_some(contact)
        }
    })
    .await;
    assert_eq!(
        contact.attributes.get("lifetime_value").map(String::as_str),
        Some("1234.5")
    );
    assert_eq!(contact.attributes.get("open_orders").map(String::as_str), Some("2"));
    assert_eq!(contact.name, "Ada Lovelace");
    assert_eq!(crm.lookups.load(Ordering::SeqCst), 1);
    customer_says(&mut conversations, &first, "hello, where is my order?").await;
    let status = routing_state(&mut router, &first, "waiting").await;
    assert_eq!(status.queue, "vip");

    // A second conversation within the TTL: answered from the cache.
    let (_, second) = open_conversation(&mut conversations, "ada@example.com").await;
    eventually("a cache hit", Duration::from_secs(10), || {
        let mut tickets = tickets.clone();
        let id = crm_connector.id.clone();
        async move {
            let health = tickets
                .get_connector_health(as_tenant(pb::GetConnectorHealthRequest { connector_id: id }))
                .await
                .ok()?
                .into_inner();
            (health.cache_hits >= 1).then_some(())
        }
    })
    .await;
    assert_eq!(
        crm.lookups.load(Ordering::SeqCst),
        1,
        "the second lookup reached the CRM"
    );
    customer_says(&mut conversations, &second, "hi again").await;
    assert_eq!(routing_state(&mut router, &second, "waiting").await.queue, "vip");

    // The CRM goes down: a new customer goes on with an empty profile and sees no error.
    crm.down.store(true, Ordering::SeqCst);
    let (bob, third) = open_conversation(&mut conversations, "bob@example.com").await;
    eventually("the failed lookup", Duration::from_secs(10), || {
        let n = crm.lookups.load(Ordering::SeqCst);
        async move { (n >= 2).then_some(()) }
    })
    .await;
    customer_says(&mut conversations, &third, "hello?").await;
    routing_state(&mut router, &third, "bot").await;
    let bob = conversations
        .get_contact(as_tenant(conv::GetContactRequest { contact_id: bob }))
        .await
        .unwrap()
        .into_inner();
    assert!(bob.attributes.is_empty(), "{bob:?}");
    let health = tickets
        .get_connector_health(as_tenant(pb::GetConnectorHealthRequest {
            connector_id: crm_connector.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.state, "failing");
    assert_eq!(health.recent_errors[0].http_status, 502);
    // On demand, a refresh names the outage; the cached profile still answers without one.
    let refused = tickets
        .lookup_contact_profile(as_tenant(pb::LookupContactProfileRequest {
            contact_id: ada.clone(),
            refresh: true,
        }))
        .await
        .expect_err("the CRM is down");
    assert_eq!(slug(&refused), "unavailable");
    let cached = tickets
        .lookup_contact_profile(as_tenant(pb::LookupContactProfileRequest {
            contact_id: ada,
            refresh: false,
        }))
        .await
        .expect("the cached profile")
        .into_inner();
    assert!(cached.cached);
    assert_eq!(cached.attributes.get("tier").map(String::as_str), Some("vip"));
    ticket_sync.stop().await.unwrap();
    routing.stop().await.unwrap();
    conversation.stop().await.unwrap();
}

async fn customer_says(conversations: &mut ConversationServiceClient<Channel>, conversation: &str, text: &str) {
    conversations
        .post_message(as_tenant(conv::PostMessageRequest {
            conversation_id: conversation.into(),
            role: "customer".into(),
            text: text.into(),
            ..Default::default()
        }))
        .await
        .expect("the customer's message is accepted");
}

async fn routing_state(
    router: &mut RoutingServiceClient<Channel>,
    conversation: &str,
    state: &str,
) -> routing_pb::RoutingStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = router
            .get_routing_status(as_tenant(routing_pb::GetRoutingStatusRequest {
                conversation_id: conversation.into(),
            }))
            .await
            .map(tonic::Response::into_inner);
        if let Ok(status) = &status
            && status.state == state
        {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{conversation} never became {state}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_secret_key_too_short_to_seal_with_stops_the_binary_with_code_64() {
    let nats = NatsServer::start();
    let mut process = ServiceProcess::start("ticket-sync", &nats, &[("TICKET_SYNC__SECRET_KEY", "sh0rt-k3y")]);
    let status = process.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(64), "{}", process.log());
    assert!(process.log().contains("ticket_sync.secret_key"), "{}", process.log());
    assert!(!process.log().contains("sh0rt-k3y"), "the key itself is never printed");
}
