//! Knowledge-base feeds end to end: a real nats-server, the conversation service in-process
//! (it serves the knowledge base), ticket-sync in-process, and a real local HTTP server serving
//! a feed of 1,000 bilingual entries with an ETag, counting what reaches it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_proto::kb::v1 as kb;
use yy_proto::kb::v1::knowledge_service_client::KnowledgeServiceClient;
use yy_proto::ticket::v1 as pb;
use yy_proto::ticket::v1::ticket_service_client::TicketServiceClient;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, spawn_service};

const TENANT: &str = "ten_kbfeed";
const FEED_TOKEN: &str = "feed-bearer-token-4242";
const SECRET_KEY: &str = "ticket-sync-test-secret-key-0123456789";

// ---------------------------------------------------------------------------------------------
// The feed.

#[derive(Default)]
struct FeedServer {
    current: Mutex<(String, String)>,
    requests: AtomicU64,
    full: AtomicU64,
    not_modified: AtomicU64,
    unauthorised: AtomicU64,
}

impl FeedServer {
    fn publish(&self, etag: &str, entries: &[Value]) {
        *self.current.lock().unwrap() = (format!("\"{etag}\""), Value::Array(entries.to_vec()).to_string());
    }
}

async fn feed(State(server): State<Arc<FeedServer>>, headers: HeaderMap) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {FEED_TOKEN}")) {
        server.unauthorised.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (etag, body) = server.current.lock().unwrap().clone();
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        server.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    server.full.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::OK,
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response()
}

fn generated_entry(i: usize) -> Value {
    if i.is_multiple_of(2) {
        json!({
            "id": format!("faq-{i:04}"),
            "title": format!("如何修改第{i}号订单的配送地址"),
            "questions": [format!("订单{i}能改地址吗")],
            "answer": format!("在订单{i}的详情页点击修改地址即可。"),
            "tags": ["shipping"],
            "locale": "zh-CN"
        })
    } else {
        json!({
            "id": format!("faq-{i:04}"),
            "title": format!("How do I track parcel number {i}"),
            "questions": [format!("where is parcel {i}")],
            "answer": format!("Open the tracking page and enter parcel {i}."),
            "format": "markdown",
            "tags": ["tracking"],
            "locale": "en"
        })
    }
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

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(url).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    wait_ready(&format!("http://{}/readyz", service.http)).await;
    service
}

async fn start_ticket_sync(nats: &NatsServer, conversation: std::net::SocketAddr) -> RunningService<RunError> {
    let mut config: ServiceConfig<yy_ticket_sync::TicketSyncConfig> = ServiceConfig {
        nats: nats_config(nats),
        eventlog: log_config(),
        ..ServiceConfig::default()
    };
    config.extra.upstream.conversation = format!("http://{conversation}");
    config.extra.ticket_sync.secret_key = Secret::new(SECRET_KEY);
    let service = spawn_service(move |http, grpc, shutdown: CancellationToken| {
        yy_ticket_sync::run(config, Listeners { http, grpc }, shutdown)
    })
    .await;
    wait_ready(&format!("http://{}/readyz", service.http)).await;
    service
}

fn as_tenant<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-yy-tenant", TENANT.parse().expect("metadata"));
    request
}

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

async fn all_entries(knowledge: &mut KnowledgeServiceClient<Channel>) -> Vec<kb::Entry> {
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = knowledge
            .list_entries(as_tenant(kb::ListEntriesRequest {
                page_size: 100,
                page_token,
            }))
            .await
            .expect("list entries")
            .into_inner();
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            return entries;
        }
        page_token = page.next_page_token;
    }
}

/// Every change the knowledge base recorded: the sum of the entries' revisions and latest
/// update times, which any recorded change moves.
async fn knowledge_changes(knowledge: &mut KnowledgeServiceClient<Channel>) -> (u64, i64, usize) {
    let entries = all_entries(knowledge).await;
    (
        entries.iter().map(|e| e.revision).sum(),
        entries.iter().map(|e| e.updated_at_ms).max().unwrap_or(0),
        entries.len(),
    )
}

async fn feed_health(tickets: &mut TicketServiceClient<Channel>, connector_id: &str) -> pb::ConnectorHealth {
    tickets
        .get_connector_health(as_tenant(pb::GetConnectorHealthRequest {
            connector_id: connector_id.into(),
        }))
        .await
        .expect("health")
        .into_inner()
}

async fn search(knowledge: &mut KnowledgeServiceClient<Channel>, query: &str) -> Vec<String> {
    knowledge
        .search(as_tenant(kb::SearchRequest {
            query: query.into(),
            limit: 5,
            ..Default::default()
        }))
        .await
        .expect("search")
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.entry_id)
        .collect()
}

async fn entry(knowledge: &mut KnowledgeServiceClient<Channel>, id: &str) -> kb::Entry {
    knowledge
        .get_entry(as_tenant(kb::GetEntryRequest { entry_id: id.into() }))
        .await
        .expect("get entry")
        .into_inner()
}

fn feed_connector(base: std::net::SocketAddr, push_only: bool) -> pb::PutConnectorRequest {
    pb::PutConnectorRequest {
        name: if push_only { "Pushed FAQ" } else { "Help centre FAQ" }.into(),
        kind: "kb_feed".into(),
        base_url: format!("http://{base}"),
        enabled: true,
        auth: Some(pb::Auth {
            kind: Some(pb::auth::Kind::Bearer(pb::BearerAuth {
                token: FEED_TOKEN.into(),
            })),
        }),
        kb_feed: Some(pb::KbFeedSettings {
            path: "/faq.json".into(),
            interval_secs: 1,
            push_only,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_feed_of_a_thousand_entries_is_imported_followed_by_etag_and_left_alone_while_unchanged() {
    let nats = NatsServer::start();
    let server: Arc<FeedServer> = Arc::default();
    let mut entries: Vec<Value> = (0..1000).map(generated_entry).collect();
    server.publish("v1", &entries);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed_addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/faq.json", get(feed))
        .with_state(server.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let conversation = start_conversation(&nats).await;
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    let mut tickets = TicketServiceClient::connect(format!("http://{}", ticket_sync.grpc))
        .await
        .unwrap();
    let mut knowledge = KnowledgeServiceClient::connect(format!("http://{}", conversation.grpc))
        .await
        .unwrap();

    let connector = tickets
        .put_connector(as_tenant(feed_connector(feed_addr, false)))
        .await
        .expect("configure the feed")
        .into_inner();
    assert_eq!(connector.kind, "kb_feed");
    assert_eq!(connector.kb_feed.as_ref().unwrap().interval_secs, 1);

    // The first pull imports the whole feed.
    let health = eventually("the first import", Duration::from_secs(60), || {
        let mut tickets = tickets.clone();
        let id = connector.id.clone();
        async move {
            let health = feed_health(&mut tickets, &id).await;
            health.kb_feed.clone().filter(|f| f.entries == 1000).map(|_| health)
        }
    })
    .await;
    let feed_state = health.kb_feed.unwrap();
    assert_eq!(feed_state.etag, "\"v1\"");
    assert_eq!(feed_state.last_outcome, "imported");
    assert_eq!(health.state, "ok");
    let (revisions, _, count) = knowledge_changes(&mut knowledge).await;
    assert_eq!((revisions, count), (1000, 1000));
    assert_eq!(
        search(&mut knowledge, "parcel number 333")
            .await
            .first()
            .map(String::as_str),
        Some("faq-0333")
    );
    assert_eq!(
        search(&mut knowledge, "订单42能改地址吗")
            .await
            .first()
            .map(String::as_str),
        Some("faq-0042")
    );
    assert_eq!(server.full.load(Ordering::SeqCst), 1);
    assert_eq!(server.unauthorised.load(Ordering::SeqCst), 0);

    // Unchanged: each pull is a conditional request answered 304, and nothing is imported.
    let before = knowledge_changes(&mut knowledge).await;
    let seen = server.not_modified.load(Ordering::SeqCst);
    eventually("two pulls answered 304", Duration::from_secs(20), || {
        let server = server.clone();
        async move { (server.not_modified.load(Ordering::SeqCst) >= seen + 2).then_some(()) }
    })
    .await;
    assert_eq!(knowledge_changes(&mut knowledge).await, before);
    assert_eq!(server.full.load(Ordering::SeqCst), 1);
    let health = feed_health(&mut tickets, &connector.id).await;
    assert_eq!(health.kb_feed.as_ref().unwrap().last_outcome, "not_modified");

    // One entry changes, another is dropped, under a new ETag.
    entries[7] = json!({
        "id": "faq-0007",
        "title": "Can my order come gift wrapped",
        "answer": "Yes: choose gift wrapping at checkout.",
        "tags": ["gifts"],
        "locale": "en"
    });
    entries.remove(8);
    server.publish("v2", &entries);
    eventually("the second import", Duration::from_secs(30), || {
        let mut tickets = tickets.clone();
        let id = connector.id.clone();
        async move {
            let health = feed_health(&mut tickets, &id).await;
            health.kb_feed.filter(|f| f.etag == "\"v2\"").map(|_| ())
        }
    })
    .await;
    let changed = entry(&mut knowledge, "faq-0007").await;
    assert_eq!(changed.revision, 2);
    assert_eq!(
        changed.entry.as_ref().unwrap().answer,
        "Yes: choose gift wrapping at checkout."
    );
    let dropped = entry(&mut knowledge, "faq-0008").await;
    assert!(!dropped.entry.as_ref().unwrap().enabled);
    assert_eq!(
        search(&mut knowledge, "gift wrapping")
            .await
            .first()
            .map(String::as_str),
        Some("faq-0007")
    );
    assert!(
        !search(&mut knowledge, "订单8能改地址吗")
            .await
            .contains(&"faq-0008".to_owned())
    );
    // 998 entries untouched: one update and one disable are all the knowledge base recorded.
    let (revisions, _, count) = knowledge_changes(&mut knowledge).await;
    assert_eq!((revisions, count), (1002, 1000));
    let health = feed_health(&mut tickets, &connector.id).await;
    assert_eq!(health.kb_feed.as_ref().unwrap().entries, 999);
    assert_eq!(server.full.load(Ordering::SeqCst), 2);

    // A restart knows the feed's ETag and the entries it owns: its pulls are still conditional.
    ticket_sync.stop().await.expect("ticket-sync stops");
    let before = knowledge_changes(&mut knowledge).await;
    let seen = server.not_modified.load(Ordering::SeqCst);
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    eventually("a pull answered 304 after the restart", Duration::from_secs(20), || {
        let server = server.clone();
        async move { (server.not_modified.load(Ordering::SeqCst) > seen).then_some(()) }
    })
    .await;
    assert_eq!(server.full.load(Ordering::SeqCst), 2);
    assert_eq!(knowledge_changes(&mut knowledge).await, before);

    // A feed that stops being JSON is refused whole; the entries stay as they were.
    *server.current.lock().unwrap() = ("\"v3\"".into(), "<html>maintenance</html>".into());
    let tickets = TicketServiceClient::connect(format!("http://{}", ticket_sync.grpc))
        .await
        .unwrap();
    let health = eventually("the broken feed refused", Duration::from_secs(20), || {
        let mut tickets = tickets.clone();
        let id = connector.id.clone();
        async move {
            let health = feed_health(&mut tickets, &id).await;
            health
                .kb_feed
                .as_ref()
                .is_some_and(|f| f.last_outcome == "refused")
                .then_some(health)
        }
    })
    .await;
    assert_eq!(health.state, "failing");
    assert!(
        health.recent_errors[0].message.contains("not a JSON array"),
        "{:?}",
        health.recent_errors
    );
    assert_eq!(health.kb_feed.unwrap().etag, "\"v2\"");
    assert_eq!(knowledge_changes(&mut knowledge).await, before);
    ticket_sync.stop().await.expect("ticket-sync stops");
}

#[tokio::test]
async fn a_pushed_feed_imports_disables_what_it_dropped_brings_it_back_and_refuses_invalid_entries() {
    let nats = NatsServer::start();
    let conversation = start_conversation(&nats).await;
    let ticket_sync = start_ticket_sync(&nats, conversation.grpc).await;
    let mut tickets = TicketServiceClient::connect(format!("http://{}", ticket_sync.grpc))
        .await
        .unwrap();
    let mut knowledge = KnowledgeServiceClient::connect(format!("http://{}", conversation.grpc))
        .await
        .unwrap();
    // Push-only: the base URL is never called.
    let unreachable: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let connector = tickets
        .put_connector(as_tenant(feed_connector(unreachable, true)))
        .await
        .expect("configure the feed")
        .into_inner();
    let push = |document: String| {
        let mut tickets = tickets.clone();
        let connector_id = connector.id.clone();
        async move {
            tickets
                .push_kb_feed(as_tenant(pb::PushKbFeedRequest { connector_id, document }))
                .await
        }
    };
    let mut entries: Vec<Value> = (0..20).map(generated_entry).collect();

    let first = push(Value::Array(entries.clone()).to_string())
        .await
        .expect("push")
        .into_inner();
    assert_eq!(
        (
            first.created,
            first.updated,
            first.unchanged,
            first.disabled,
            first.entries
        ),
        (20, 0, 0, 0, 20)
    );
    let again = push(Value::Array(entries.clone()).to_string())
        .await
        .expect("push")
        .into_inner();
    assert_eq!(
        (again.created, again.updated, again.unchanged, again.disabled),
        (0, 0, 20, 0)
    );

    let dropped = entries.remove(3);
    let second = push(Value::Array(entries.clone()).to_string())
        .await
        .expect("push")
        .into_inner();
    assert_eq!((second.unchanged, second.disabled, second.entries), (19, 1, 19));
    assert!(!entry(&mut knowledge, "faq-0003").await.entry.unwrap().enabled);

    entries.push(dropped);
    let back = push(Value::Array(entries.clone()).to_string())
        .await
        .expect("push")
        .into_inner();
    assert_eq!((back.updated, back.disabled, back.entries), (1, 0, 20));
    assert!(entry(&mut knowledge, "faq-0003").await.entry.unwrap().enabled);

    // One invalid entry refuses the document whole, and nothing is disabled.
    let before = knowledge_changes(&mut knowledge).await;
    let mut invalid = entries[..5].to_vec();
    invalid.push(json!({"id": "faq-bad", "title": "no answer", "locale": "en"}));
    let refused = push(Value::Array(invalid).to_string()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let not_json = push("{\"entries\": []}".into()).await.unwrap_err();
    assert_eq!(not_json.code(), tonic::Code::InvalidArgument);
    assert_eq!(knowledge_changes(&mut knowledge).await, before);
    let health = feed_health(&mut tickets.clone(), &connector.id).await;
    let feed_state = health.kb_feed.unwrap();
    assert_eq!((feed_state.last_outcome.as_str(), feed_state.entries), ("refused", 20));
    assert!(feed_state.next_pull_at.is_none());

    // An empty feed disables everything it brought, and imports nothing.
    let emptied = push("[]".into()).await.expect("push").into_inner();
    assert_eq!(
        (emptied.created, emptied.updated, emptied.disabled, emptied.entries),
        (0, 0, 20, 0)
    );
    assert!(
        all_entries(&mut knowledge)
            .await
            .iter()
            .all(|e| !e.entry.as_ref().unwrap().enabled)
    );

    // Only kb_feed connectors take a feed.
    let unknown = tickets
        .push_kb_feed(as_tenant(pb::PushKbFeedRequest {
            connector_id: "cnx_nope".into(),
            document: "[]".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    ticket_sync.stop().await.expect("ticket-sync stops");
}
