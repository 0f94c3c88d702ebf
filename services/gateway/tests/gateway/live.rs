//! Live events over Server-Sent Events and WebSocket: order, resuming, type filters, tenant
//! isolation and shutdown.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::conversation::v1::{
    ChannelIdentity, OpenConversationRequest, PostMessageRequest, Priority, UpdateConversationRequest,
    UpsertContactRequest,
};

use crate::support::{Cluster, TenantKey};

/// How long any one expected event may take.
const WAIT: Duration = Duration::from_secs(15);

/// A tenant with an API key, acting on the conversation service directly (as the gateway does,
/// with the tenant in `x-yy-tenant`).
struct Tenant {
    id: String,
    key: String,
    conversations: ConversationServiceClient<Channel>,
}

impl Tenant {
    async fn create(cluster: &Cluster, name: &str) -> Tenant {
        let TenantKey { id, key } = cluster.create_tenant(name).await;
        let grpc = cluster.conversation.as_ref().expect("conversation runs").grpc;
        let conversations = ConversationServiceClient::connect(format!("http://{grpc}"))
            .await
            .expect("connect to the conversation service");
        Tenant { id, key, conversations }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("x-yy-tenant", self.id.parse().expect("tenant metadata"));
        request
    }

    async fn contact(&mut self, external_id: &str) -> String {
        let request = self.request(UpsertContactRequest {
            identity: Some(ChannelIdentity {
                channel: "web".into(),
                external_id: external_id.into(),
            }),
            ..Default::default()
        });
        let response = self
            .conversations
            .upsert_contact(request)
            .await
            .expect("upsert contact");
        response.into_inner().contact.expect("contact").id
    }

    /// A new contact and a conversation with it; returns the conversation id.
    async fn conversation(&mut self, visitor: &str) -> String {
        let contact_id = self.contact(visitor).await;
        let request = self.request(OpenConversationRequest {
            contact_id,
            channel: "web".into(),
            subject: format!("{visitor} needs help"),
            ..Default::default()
        });
        let response = self
            .conversations
            .open_conversation(request)
            .await
            .expect("open conversation");
        response.into_inner().id
    }

    async fn post(&mut self, conversation_id: &str, text: &str) {
        let request = self.request(PostMessageRequest {
            conversation_id: conversation_id.into(),
            role: "customer".into(),
            text: text.into(),
            ..Default::default()
        });
        self.conversations.post_message(request).await.expect("post message");
    }

    async fn tag(&mut self, conversation_id: &str, tag: &str) {
        let request = self.request(UpdateConversationRequest {
            conversation_id: conversation_id.into(),
            add_tags: vec![tag.into()],
            ..Default::default()
        });
        self.conversations
            .update_conversation(request)
            .await
            .expect("update conversation");
    }

    async fn prioritise(&mut self, conversation_id: &str, priority: Priority) {
        let request = self.request(UpdateConversationRequest {
            conversation_id: conversation_id.into(),
            priority: priority as i32,
            ..Default::default()
        });
        self.conversations
            .update_conversation(request)
            .await
            .expect("update conversation");
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: String,
    event: String,
    data: Value,
}

/// An open Server-Sent Events response, read as it arrives.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens `path` with `key`, sending `last_event_id` as the `Last-Event-ID` header when given.
    async fn open(cluster: &Cluster, key: &str, path: &str, last_event_id: Option<&str>) -> Sse {
        let response = get(cluster, key, path, last_event_id).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "text/event-stream",
            "{path}"
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when none arrives within `wait` or the stream ended.
    async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?;
            let chunk = chunk.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8 stream"));
        }
    }

    async fn next(&mut self) -> SseEvent {
        self.next_within(WAIT).await.expect("an event in time")
    }

    /// The next `n` events.
    async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }

    /// Asserts that no event arrives for a while.
    async fn assert_quiet(&mut self) {
        if let Some(event) = self.next_within(Duration::from_millis(800)).await {
            panic!("unexpected event: {event:?}");
        }
    }

    /// Whether the response ends within `wait`.
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None) | Err(_)) => return true,
            }
        }
    }
}

/// An SSE block's event; `None` for a comment (keep-alive) block.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("event:") {
            event = Some(value.trim_start().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        id: id.expect("every event has an id"),
        event: event.expect("every event has a type"),
        data: serde_json::from_str(&data.join("\n")).expect("data is JSON"),
    })
}

async fn get(cluster: &Cluster, key: &str, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = cluster
        .http
        .get(cluster.url(path))
        .bearer_auth(key)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request")
}

async fn expect_problem(response: reqwest::Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: Value = response.json().await.expect("problem json");
    assert_eq!(problem["type"], format!("/problems/{slug}"), "{problem}");
    problem
}

fn texts(events: &[SseEvent]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.event == "message.created")
        .map(|e| e.data["data"]["text"].as_str().expect("text"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_stream_delivers_its_events_in_order_and_resumes_after_the_last_event_id() {
    let cluster = Cluster::start().await;
    let mut tenant = Tenant::create(&cluster, "Acme").await;
    let conversation = tenant.conversation("visitor-1").await;
    let path = format!("/v1/conversations/{conversation}/events");

    let mut live = Sse::open(&cluster, &tenant.key, &path, None).await;
    for text in ["one", "two", "three"] {
        tenant.post(&conversation, text).await;
    }
    tenant.prioritise(&conversation, Priority::Urgent).await;
    let events = live.take(4).await;
    assert_eq!(texts(&events), ["one", "two", "three"]);
    for (i, event) in events[..3].iter().enumerate() {
        let public = &event.data;
        assert_eq!(public["type"], "message.created");
        assert_eq!(public["tenant_id"], tenant.id.as_str());
        assert_eq!(public["aggregate_id"], conversation.as_str());
        assert_eq!(public["data"]["conversation_id"], conversation.as_str());
        assert_eq!(public["data"]["role"], "customer");
        assert_eq!(public["data"]["position"], i as u64 + 1);
        assert!(public["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(events[3].event, "conversation.updated");
    assert_eq!(events[3].data["data"]["changed"], json!(["priority"]));
    assert_eq!(events[3].data["data"]["priority"], "urgent");
    let ids: BTreeSet<_> = events.iter().map(|e| e.data["id"].to_string()).collect();
    assert_eq!(ids.len(), 4, "event ids are unique");
    live.assert_quiet().await;
    drop(live);

    // Missed while disconnected.
    tenant.post(&conversation, "four").await;
    tenant.post(&conversation, "five").await;

    let last = &events[3].id;
    let mut resumed = Sse::open(&cluster, &tenant.key, &path, Some(last)).await;
    let missed = resumed.take(2).await;
    assert_eq!(texts(&missed), ["four", "five"]);
    resumed.assert_quiet().await;
    tenant.post(&conversation, "six").await;
    assert_eq!(texts(&[resumed.next().await]), ["six"]);

    // The query parameter resumes the same way, from any earlier event.
    let after_one = format!("{path}?last_event_id={}", events[0].id);
    let mut from_one = Sse::open(&cluster, &tenant.key, &after_one, None).await;
    let rest = from_one.take(6).await;
    assert_eq!(texts(&rest), ["two", "three", "four", "five", "six"]);
    assert_eq!(rest[2].event, "conversation.updated");
    from_one.assert_quiet().await;

    // `from=start` replays the whole conversation; a cursor would win over it.
    let mut replay = Sse::open(&cluster, &tenant.key, &format!("{path}?from=start"), None).await;
    let first = replay.next().await;
    assert_eq!(first.event, "conversation.created");
    assert_eq!(first.data["data"]["subject"], "visitor-1 needs help");
    let mut history = vec![first];
    while let Some(event) = replay.next_within(Duration::from_millis(800)).await {
        history.push(event);
    }
    assert_eq!(texts(&history), ["one", "two", "three", "four", "five", "six"]);
    let mut cursor_wins = Sse::open(&cluster, &tenant.key, &format!("{path}?from=start"), Some(&rest[5].id)).await;
    cursor_wins.assert_quiet().await;

    let response = get(&cluster, &tenant.key, &path, Some("not-a-cursor")).await;
    let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    assert!(
        problem["detail"].as_str().unwrap_or("").contains("Last-Event-ID"),
        "{problem}"
    );
    let response = get(&cluster, &tenant.key, &format!("{path}?from=yesterday"), None).await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    let response = cluster.http.get(cluster.url(&path)).send().await.expect("request");
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_stream_filters_by_type_and_tenants_see_only_their_own_events() {
    let cluster = Cluster::start().await;
    let mut a = Tenant::create(&cluster, "Acme").await;
    let mut b = Tenant::create(&cluster, "Globex").await;
    let a_conversation = a.conversation("visitor-a").await;

    // B cannot open A's conversation stream, and that looks exactly like an unknown id.
    let foreign = get(
        &cluster,
        &b.key,
        &format!("/v1/conversations/{a_conversation}/events"),
        None,
    )
    .await;
    let foreign = expect_problem(foreign, StatusCode::NOT_FOUND, "not-found").await;
    let unknown = get(&cluster, &b.key, "/v1/conversations/conv_unknown/events", None).await;
    let unknown = expect_problem(unknown, StatusCode::NOT_FOUND, "not-found").await;
    assert_eq!(
        foreign["detail"].as_str().map(|d| d.replace(&a_conversation, "ID")),
        unknown["detail"].as_str().map(|d| d.replace("conv_unknown", "ID"))
    );
    for path in ["/v1/conversations/a.b/events", "/v1/conversations/%20/events"] {
        expect_problem(
            get(&cluster, &b.key, path, None).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }

    let mut a_filtered = Sse::open(
        &cluster,
        &a.key,
        "/v1/events?types=message.created,conversation.*",
        None,
    )
    .await;
    let mut b_all = Sse::open(&cluster, &b.key, "/v1/events", None).await;

    a.post(&a_conversation, "hello from a").await;
    a.tag(&a_conversation, "billing").await;
    // A new contact (contact.created, filtered out) and its conversation (conversation.created).
    let a_second = a.conversation("visitor-a2").await;
    let b_conversation = b.conversation("visitor-b").await;
    b.post(&b_conversation, "hello from b").await;

    let got = a_filtered.take(3).await;
    a_filtered.assert_quiet().await;
    for event in &got {
        assert_eq!(event.data["tenant_id"], a.id.as_str());
        assert_eq!(event.event, event.data["type"]);
    }
    // Order holds per conversation; across conversations events interleave as they arrive.
    let first: Vec<_> = got
        .iter()
        .filter(|e| e.data["aggregate_id"] == a_conversation.as_str())
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(first, ["message.created", "conversation.updated"]);
    let second: Vec<_> = got
        .iter()
        .filter(|e| e.data["aggregate_id"] == a_second.as_str())
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(second, ["conversation.created"]);

    let b_events = b_all.take(3).await;
    b_all.assert_quiet().await;
    let kinds: BTreeSet<_> = b_events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["contact.created", "conversation.created", "message.created"])
    );
    for event in &b_events {
        assert_eq!(event.data["tenant_id"], b.id.as_str(), "{event:?}");
        assert_ne!(event.data["aggregate_id"], a_conversation.as_str());
        assert_ne!(event.data["aggregate_id"], a_second.as_str());
    }
    assert_eq!(texts(&b_events), ["hello from b"]);

    // A tenant-wide cursor resumes exactly after its event.
    let cursor = &got[2].id;
    drop(a_filtered);
    a.post(&a_second, "missed").await;
    let mut resumed = Sse::open(
        &cluster,
        &a.key,
        "/v1/events?types=message.created,conversation.*",
        Some(cursor),
    )
    .await;
    let missed = resumed.next().await;
    assert_eq!(texts(std::slice::from_ref(&missed)), ["missed"]);
    resumed.assert_quiet().await;
    // B, resuming with A's cursor, still sees only B's events: a cursor is a position, not a grant.
    let mut b_with_a_cursor = Sse::open(&cluster, &b.key, "/v1/events?from=start", Some(cursor)).await;
    while let Some(event) = b_with_a_cursor.next_within(Duration::from_millis(800)).await {
        assert_eq!(event.data["tenant_id"], b.id.as_str());
    }

    let response = get(&cluster, &a.key, "/v1/events?types=message.sent", None).await;
    let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation-failed").await;
    assert!(
        problem["detail"].as_str().unwrap_or("").starts_with("types:"),
        "{problem}"
    );

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_delivers_the_same_events_and_resumes_with_last_event_id() {
    let cluster = Cluster::start().await;
    let mut tenant = Tenant::create(&cluster, "Acme").await;
    let conversation = tenant.conversation("visitor-ws").await;
    let path = format!("/v1/conversations/{conversation}/events");

    let mut sse = Sse::open(&cluster, &tenant.key, &path, None).await;
    let mut socket = WebSocket::connect(&cluster, &tenant.key, &format!("{path}/ws")).await;
    let mut tenant_socket = WebSocket::connect(&cluster, &tenant.key, "/v1/events/ws?types=message.created").await;
    tenant.post(&conversation, "one").await;
    tenant.tag(&conversation, "vip").await;
    tenant.post(&conversation, "two").await;

    let over_sse = sse.take(3).await;
    for expected in &over_sse {
        let frame = socket.next().await;
        assert_eq!(frame["id"], expected.id.as_str());
        assert_eq!(frame["event"], expected.data, "the same event over both transports");
    }
    let messages = [tenant_socket.next().await, tenant_socket.next().await];
    let texts: Vec<_> = messages.iter().map(|f| f["event"]["data"]["text"].clone()).collect();
    assert_eq!(texts, [json!("one"), json!("two")]);
    socket.close().await;

    tenant.post(&conversation, "three").await;
    let resume = format!("{path}/ws?last_event_id={}", over_sse[2].id);
    let mut resumed = WebSocket::connect(&cluster, &tenant.key, &resume).await;
    let frame = resumed.next().await;
    assert_eq!(frame["event"]["data"]["text"], "three");
    assert!(resumed.next_within(Duration::from_millis(800)).await.is_none());

    // Not an upgrade, or no key: problem documents, not a socket.
    let response = get(&cluster, &tenant.key, &format!("{path}/ws"), None).await;
    expect_problem(response, StatusCode::UPGRADE_REQUIRED, "upgrade-required").await;
    let (status, _) = WebSocket::handshake(&cluster, None, "/v1/events/ws").await;
    assert_eq!(status, 401);
    let other = Tenant::create(&cluster, "Globex").await;
    let (status, _) = WebSocket::handshake(&cluster, Some(&other.key), &format!("{path}/ws")).await;
    assert_eq!(status, 404);

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_gateway_shuts_down() {
    let mut cluster = Cluster::start().await;
    let mut tenant = Tenant::create(&cluster, "Acme").await;
    let conversation = tenant.conversation("visitor-stop").await;
    let mut sse = Sse::open(
        &cluster,
        &tenant.key,
        &format!("/v1/conversations/{conversation}/events"),
        None,
    )
    .await;
    let mut socket = WebSocket::connect(&cluster, &tenant.key, "/v1/events/ws").await;
    tenant.post(&conversation, "before").await;
    assert_eq!(texts(&[sse.next().await]), ["before"]);
    assert_eq!(socket.next().await["event"]["data"]["text"], "before");

    let started = Instant::now();
    let gateway = cluster.gateway.take().expect("gateway runs");
    let (stopped, ended) = tokio::join!(gateway.stop(), sse.ends_within(Duration::from_secs(5)));
    stopped.expect("gateway stops cleanly");
    assert!(ended, "the SSE response ends");
    // Well inside the shutdown grace period: open streams do not hold the gateway up.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(socket.closed_with().await, Some(1001));

    cluster.stop().await;
}

/// A minimal WebSocket client (RFC 6455): enough to read the server's text frames and to close.
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    /// Opens `path` with `key` and expects the switch to WebSocket.
    async fn connect(cluster: &Cluster, key: &str, path: &str) -> WebSocket {
        let (status, stream) = Self::handshake(cluster, Some(key), path).await;
        assert_eq!(status, 101, "{path}");
        WebSocket { stream }
    }

    /// Sends the opening handshake; the response status and the connection after the headers.
    async fn handshake(cluster: &Cluster, key: Option<&str>, path: &str) -> (u16, TcpStream) {
        let address = cluster.gateway.as_ref().expect("gateway runs").http;
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let nonce = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
        let authorization = key
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n{authorization}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send handshake");
        // Byte by byte, so that no frame after the headers is consumed with them.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = tokio::time::timeout(WAIT, stream.read_u8())
                .await
                .expect("handshake response in time")
                .expect("handshake response");
            head.push(byte);
        }
        let head = String::from_utf8(head).expect("ASCII headers");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        (status, stream)
    }

    /// The next text frame as JSON.
    async fn next(&mut self) -> Value {
        self.next_within(WAIT).await.expect("a frame in time")
    }

    /// The next text frame as JSON, or `None` when none arrives within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (opcode, payload) = tokio::time::timeout_at(deadline, self.frame()).await.ok()?;
            match opcode {
                1 => return Some(serde_json::from_slice(&payload).expect("a JSON frame")),
                8 => panic!("closed: {payload:?}"),
                // Pings and pongs.
                _ => continue,
            }
        }
    }

    /// The close code the server closes with, skipping other frames.
    async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (opcode, payload) = tokio::time::timeout_at(deadline, self.frame()).await.ok()?;
            if opcode == 8 {
                return payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]));
            }
        }
    }

    async fn frame(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 2];
        self.stream.read_exact(&mut header).await.expect("frame header");
        let opcode = header[0] & 0x0f;
        assert_eq!(header[1] & 0x80, 0, "server frames are not masked");
        let length = match header[1] & 0x7f {
            126 => u64::from(self.stream.read_u16().await.expect("length")),
            127 => self.stream.read_u64().await.expect("length"),
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(length).expect("length")];
        self.stream.read_exact(&mut payload).await.expect("payload");
        (opcode, payload)
    }

    async fn close(mut self) {
        // A masked close frame with status 1000 (normal).
        let mask = rand_bytes();
        let body = 1000u16.to_be_bytes();
        let mut frame = vec![0x88, 0x80 | body.len() as u8];
        frame.extend_from_slice(&mask[..4]);
        frame.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("send close");
    }
}

fn rand_bytes() -> [u8; 16] {
    rand::random()
}

/// A REST call with the tenant's key; answers the JSON body after checking the status.
async fn rest(
    cluster: &Cluster,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = cluster.http.request(method, cluster.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The whole first-capability story, over the public REST API and its live stream only: a web
/// visitor writes, the messages stream live in order, a dropped stream resumes with exactly what
/// it missed, the same customer on WhatsApp has one history, 50 messages posted at once arrive in
/// the same order on the stream as in the history, and the resolved conversation is rated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_from_first_message_to_rating_over_rest_and_the_live_stream() {
    use reqwest::Method;
    let cluster = Cluster::start().await;
    let tenant = cluster.create_tenant("Acme").await;
    let key = tenant.key.as_str();

    let (status, contact) = rest(
        &cluster,
        key,
        Method::POST,
        "/v1/contacts",
        Some(json!({"identity": {"channel": "web", "external_id": "visitor-7"}, "name": "Ann"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    let contact_id = contact["id"].as_str().expect("contact id").to_owned();
    let (status, conversation) = rest(
        &cluster,
        key,
        Method::POST,
        "/v1/conversations",
        Some(json!({"contact_id": contact_id, "channel": "web"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{conversation}");
    let web = conversation["id"].as_str().expect("conversation id").to_owned();
    let events = format!("/v1/conversations/{web}/events");
    let post = |conversation: String, text: String| {
        let cluster = &cluster;
        async move {
            let path = format!("/v1/conversations/{conversation}/messages");
            let (status, message) = rest(
                cluster,
                key,
                Method::POST,
                &path,
                Some(json!({"role": "customer", "text": text})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{message}");
            message
        }
    };

    // Messages appear on the stream in the order they were posted.
    let mut stream = Sse::open(&cluster, key, &events, None).await;
    for text in ["hello", "where is my order?", "订单号 A-1024"] {
        post(web.clone(), text.into()).await;
    }
    let seen = stream.take(3).await;
    assert_eq!(texts(&seen), ["hello", "where is my order?", "订单号 A-1024"]);
    assert!(seen.iter().all(|e| e.event == "message.created"));

    // The client drops; two more messages; reconnecting with Last-Event-ID gets exactly those.
    drop(stream);
    post(web.clone(), "are you there?".into()).await;
    post(web.clone(), "hello??".into()).await;
    let mut resumed = Sse::open(&cluster, key, &events, Some(&seen[2].id)).await;
    assert_eq!(texts(&resumed.take(2).await), ["are you there?", "hello??"]);
    resumed.assert_quiet().await;

    // The same customer on WhatsApp: linked to the contact, one history across both channels.
    let (status, linked) = rest(
        &cluster,
        key,
        Method::POST,
        &format!("/v1/contacts/{contact_id}/identities"),
        Some(json!({"channel": "whatsapp", "external_id": "+8613800000007"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    let (status, same) = rest(
        &cluster,
        key,
        Method::POST,
        "/v1/contacts",
        Some(json!({"identity": {"channel": "whatsapp", "external_id": "+8613800000007"}})),
    )
    .await;
    assert_eq!(
        (status, same["id"].as_str()),
        (StatusCode::OK, Some(contact_id.as_str()))
    );
    let (_, whatsapp) = rest(
        &cluster,
        key,
        Method::POST,
        "/v1/conversations",
        Some(json!({"contact_id": contact_id, "channel": "whatsapp"})),
    )
    .await;
    let whatsapp = whatsapp["id"].as_str().expect("conversation id").to_owned();
    post(whatsapp.clone(), "it's me again, on WhatsApp".into()).await;
    let (_, history) = rest(
        &cluster,
        key,
        Method::GET,
        &format!("/v1/contacts/{contact_id}/conversations"),
        None,
    )
    .await;
    let channels: BTreeSet<&str> = history["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .filter_map(|c| c["channel"].as_str())
        .collect();
    assert_eq!(channels, BTreeSet::from(["web", "whatsapp"]));

    // 50 messages at once: stored once each, and the stream's order is the history's order.
    let mut stream = Sse::open(&cluster, key, &events, Some(&resumed_cursor(&cluster, key, &web).await)).await;
    let burst: Vec<_> = (0..50).map(|i| post(web.clone(), format!("burst {i}"))).collect();
    futures::future::join_all(burst).await;
    let streamed: Vec<String> = stream
        .take(50)
        .await
        .iter()
        .map(|e| e.data["data"]["id"].as_str().expect("id").to_owned())
        .collect();
    let (_, page) = rest(
        &cluster,
        key,
        Method::GET,
        &format!("/v1/conversations/{web}/messages?page_size=100"),
        None,
    )
    .await;
    let stored: Vec<String> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("burst ")))
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(stored.len(), 50);
    assert_eq!(streamed, stored);

    // Resolved, then rated.
    let (status, _) = rest(
        &cluster,
        key,
        Method::POST,
        &format!("/v1/conversations/{web}/resolve"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, rated) = rest(
        &cluster,
        key,
        Method::POST,
        &format!("/v1/conversations/{web}/csat"),
        Some(json!({"score": 5, "comment": "很好 / great"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["csat"]["score"], 5);
    cluster.stop().await;
}

/// The cursor of the conversation's latest event, read from a replay of its stream.
async fn resumed_cursor(cluster: &Cluster, key: &str, conversation: &str) -> String {
    let mut replay = Sse::open(
        cluster,
        key,
        &format!("/v1/conversations/{conversation}/events?from=start"),
        None,
    )
    .await;
    let mut last = None;
    while let Some(event) = replay.next_within(Duration::from_millis(500)).await {
        last = Some(event.id);
    }
    last.expect("the conversation has events")
}
