//! The REST API end to end: contacts, conversations and messages through the gateway to the
//! conversation service; idempotency keys; bad input; tenant isolation.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Cluster};

/// A tenant's view of the API through one of its keys.
#[derive(Clone)]
struct Tenant {
    key: String,
    http: reqwest::Client,
    base: String,
}

/// An answer: status, headers and the JSON body (`Null` when there is none).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:#?}", self.body);
        self.body
    }

    /// Asserts a problem document of `slug` with `status`.
    #[track_caller]
    fn expect_problem(&self, status: StatusCode, slug: &str) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {:#?}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{:#?}",
            self.body
        );
        assert_eq!(self.body["type"], format!("/problems/{slug}"), "{:#?}", self.body);
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["title"].is_string());
        &self.body
    }
}

async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer { status, headers, body }
}

impl Tenant {
    /// Creates a tenant and issues it a key through the admin API.
    async fn create(cluster: &Cluster, name: &str) -> Tenant {
        Tenant {
            key: cluster.create_tenant(name).await.key,
            http: cluster.http.clone(),
            base: cluster.url(""),
        }
    }

    /// The same tenant through the (possibly restarted) gateway of `cluster`.
    fn through(&self, cluster: &Cluster) -> Tenant {
        Tenant {
            base: cluster.url(""),
            ..self.clone()
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        read_answer(request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::POST, path).json(&body)).await
    }

    async fn post_with_key(&self, path: &str, key: &str, body: Value) -> Answer {
        self.send(
            self.request(Method::POST, path)
                .header("idempotency-key", key)
                .json(&body),
        )
        .await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::PATCH, path).json(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    async fn contact(&self, channel: &str, external_id: &str) -> Value {
        self.post(
            "/v1/contacts",
            json!({ "identity": { "channel": channel, "external_id": external_id } }),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    async fn conversation(&self, contact_id: &str, channel: &str) -> Value {
        self.post(
            "/v1/conversations",
            json!({ "contact_id": contact_id, "channel": channel }),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    async fn message(&self, conversation_id: &str, text: &str) -> Value {
        self.post(
            &format!("/v1/conversations/{conversation_id}/messages"),
            json!({ "role": "customer", "text": text }),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// Every message of a conversation, following pages.
    async fn messages(&self, conversation_id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/v1/conversations/{conversation_id}/messages?page_size=100");
            if let Some(token) = &token {
                path.push_str(&format!("&page_token={token}"));
            }
            let page = self.get(&path).await.expect(StatusCode::OK);
            all.extend(page["messages"].as_array().expect("messages").iter().cloned());
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return all,
            }
        }
    }

    /// Every conversation of the tenant.
    async fn conversations(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = "/v1/conversations?page_size=100".to_owned();
            if let Some(token) = &token {
                path.push_str(&format!("&page_token={token}"));
            }
            let page = self.get(&path).await.expect(StatusCode::OK);
            all.extend(page["conversations"].as_array().expect("conversations").iter().cloned());
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return all,
            }
        }
    }
}

/// The ids of the first page of `GET /v1/conversations?<query>`.
async fn list_ids(tenant: &Tenant, query: &str) -> Vec<String> {
    let page = tenant
        .get(&format!("/v1/conversations?{query}"))
        .await
        .expect(StatusCode::OK);
    ids(page["conversations"].as_array().expect("conversations"))
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_customer_across_two_channels_from_first_message_to_rating() {
    let cluster = Cluster::start().await;
    let acme = Tenant::create(&cluster, "Acme").await;

    // The web visitor becomes a contact; asking again finds the same one.
    let created = acme
        .post(
            "/v1/contacts",
            json!({
                "identity": { "channel": "web", "external_id": "visitor-7f3a" },
                "name": "Zhang Wei",
                "attributes": { "tier": "vip" }
            }),
        )
        .await;
    let location = created.header("location").map(str::to_owned);
    let contact = created.expect(StatusCode::CREATED);
    let contact_id = contact["id"].as_str().expect("contact id").to_owned();
    assert!(contact_id.starts_with("ctc_"), "{contact}");
    assert_eq!(location.as_deref(), Some(format!("/v1/contacts/{contact_id}").as_str()));
    assert_eq!(contact["name"], "Zhang Wei");
    assert_eq!(contact["attributes"], json!({ "tier": "vip" }));
    assert_eq!(
        contact["identities"],
        json!([{ "channel": "web", "external_id": "visitor-7f3a" }])
    );
    assert!(contact["created_at"].as_str().expect("created_at").ends_with('Z'));
    let found = acme
        .post(
            "/v1/contacts",
            json!({ "identity": { "channel": "web", "external_id": "visitor-7f3a" } }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(found["id"], contact_id.as_str());
    assert_eq!(
        acme.get(&format!("/v1/contacts/{contact_id}"))
            .await
            .expect(StatusCode::OK)["name"],
        "Zhang Wei"
    );

    // A web conversation with a few messages.
    let opened = acme
        .post(
            "/v1/conversations",
            json!({
                "contact_id": contact_id,
                "channel": "web",
                "subject": "Order 8812 has not arrived",
                "priority": "high",
                "tags": ["delivery"],
                "attributes": { "order_id": "8812" }
            }),
        )
        .await;
    let location = opened.header("location").map(str::to_owned);
    let web = opened.expect(StatusCode::CREATED);
    let web_id = web["id"].as_str().expect("conversation id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/conversations/{web_id}").as_str())
    );
    assert_eq!(web["status"], "bot");
    assert_eq!(web["priority"], "high");
    assert_eq!(web["channel"], "web");
    assert_eq!(web["contact_id"], contact_id.as_str());
    assert_eq!(web["tags"], json!(["delivery"]));
    assert_eq!(web["attributes"], json!({ "order_id": "8812" }));
    assert_eq!(web["message_count"], 0);

    let messages_path = format!("/v1/conversations/{web_id}/messages");
    let first = acme
        .post(
            &messages_path,
            json!({ "role": "customer", "text": "My order has not arrived." }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(first["position"], 1);
    assert_eq!(first["role"], "customer");
    assert!(first["id"].as_str().expect("message id").starts_with("msg_"));
    let second = acme
        .post(
            &messages_path,
            json!({
                "role": "bot",
                "text": "Let me check that for you.",
                "content": { "quick_replies": [{ "title": "Talk to a person", "payload": "handoff" }] }
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(second["position"], 2);
    assert_eq!(second["content"]["quick_replies"][0]["payload"], "handoff");

    // A human agent takes over.
    let assigned = acme
        .patch(
            &format!("/v1/conversations/{web_id}"),
            json!({ "status": "assigned", "agent_id": "agt_li_wei", "add_tags": ["refund"] }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(assigned["status"], "assigned");
    assert_eq!(assigned["agent_id"], "agt_li_wei");
    assert_eq!(assigned["tags"], json!(["delivery", "refund"]));
    let third = acme
        .post(
            &messages_path,
            json!({
                "role": "agent",
                "author_id": "agt_li_wei",
                "text": "Sorry! Here is your order.",
                "content": { "cards": [{ "title": "Order 8812", "url": "https://shop.example.com/orders/8812" }] }
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(third["position"], 3);
    assert_eq!(third["author_id"], "agt_li_wei");

    // History, oldest first, also across pages.
    let history = acme.get(&messages_path).await.expect(StatusCode::OK);
    assert_eq!(
        ids(history["messages"].as_array().expect("messages")),
        ids(&[first.clone(), second, third])
    );
    assert_eq!(history["next_page_token"], Value::Null);
    let page_one = acme
        .get(&format!("{messages_path}?page_size=2"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(page_one["messages"].as_array().expect("messages").len(), 2);
    let token = page_one["next_page_token"].as_str().expect("a next page");
    let page_two = acme
        .get(&format!("{messages_path}?page_size=2&page_token={token}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(page_two["messages"][0]["position"], 3);
    assert_eq!(page_two["next_page_token"], Value::Null);

    // The same customer writes on WhatsApp: link the identity, and their history spans both.
    let linked = acme
        .post(
            &format!("/v1/contacts/{contact_id}/identities"),
            json!({ "channel": "whatsapp", "external_id": "+8613800138000" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(linked["identities"].as_array().expect("identities").len(), 2);
    let by_whatsapp = acme
        .post(
            "/v1/contacts",
            json!({ "identity": { "channel": "whatsapp", "external_id": "+8613800138000" } }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(by_whatsapp["id"], contact_id.as_str());
    let whatsapp = acme.conversation(&contact_id, "whatsapp").await;
    let whatsapp_id = whatsapp["id"].as_str().expect("id").to_owned();
    acme.message(&whatsapp_id, "Any news on 8812?").await;

    let history = acme
        .get(&format!("/v1/contacts/{contact_id}/conversations"))
        .await
        .expect(StatusCode::OK);
    let spanning = history["conversations"].as_array().expect("conversations");
    assert_eq!(ids(spanning), vec![whatsapp_id.clone(), web_id.clone()], "newest first");
    assert_eq!(spanning[0]["channel"], "whatsapp");
    assert_eq!(spanning[1]["channel"], "web");

    // Filters of the tenant-wide list.
    assert_eq!(list_ids(&acme, "channel=whatsapp").await, vec![whatsapp_id.clone()]);
    assert_eq!(list_ids(&acme, "status=assigned").await, vec![web_id.clone()]);
    assert_eq!(list_ids(&acme, "status=bot,assigned").await.len(), 2);
    assert_eq!(list_ids(&acme, "status=bot&status=assigned").await.len(), 2);
    assert_eq!(list_ids(&acme, "tag=refund&priority=high").await, vec![web_id.clone()]);
    assert_eq!(list_ids(&acme, &format!("contact_id={contact_id}")).await.len(), 2);
    assert!(list_ids(&acme, "status=resolved").await.is_empty());

    // Resolve and rate.
    let conversation_path = format!("/v1/conversations/{web_id}");
    let resolved = acme
        .post(&format!("{conversation_path}/resolve"), json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(resolved["status"], "resolved");
    let rated = acme
        .post(
            &format!("{conversation_path}/csat"),
            json!({ "score": 5, "comment": "Quick and friendly" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(rated["csat"]["score"], 5);
    assert_eq!(rated["csat"]["comment"], "Quick and friendly");
    acme.post(&format!("{conversation_path}/csat"), json!({ "score": 1 }))
        .await
        .expect_problem(StatusCode::CONFLICT, "invalid-state");
    let final_state = acme.get(&conversation_path).await.expect(StatusCode::OK);
    assert_eq!(final_state["status"], "resolved");
    assert_eq!(final_state["message_count"], 3);
    assert_eq!(final_state["csat"]["score"], 5);

    // Reopen the WhatsApp one after resolving it.
    let whatsapp_path = format!("/v1/conversations/{whatsapp_id}");
    acme.post(&format!("{whatsapp_path}/resolve"), json!({}))
        .await
        .expect(StatusCode::OK);
    let reopened = acme
        .post(&format!("{whatsapp_path}/reopen"), json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(reopened["status"], "bot");

    // A contact known by SMS turns out to be the same customer: merge it in.
    let sms = acme.contact("sms", "+8613900139000").await;
    let sms_id = sms["id"].as_str().expect("id").to_owned();
    let sms_conversation = acme.conversation(&sms_id, "sms").await;
    let merged = acme
        .post(
            &format!("/v1/contacts/{contact_id}/merge"),
            json!({ "source_contact_id": sms_id }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(merged["id"], contact_id.as_str());
    assert_eq!(merged["identities"].as_array().expect("identities").len(), 3);
    assert_eq!(merged["merged_contact_ids"], json!([sms_id]));
    assert_eq!(
        acme.get(&format!("/v1/contacts/{sms_id}")).await.expect(StatusCode::OK)["id"],
        contact_id.as_str()
    );
    let history = acme
        .get(&format!("/v1/contacts/{contact_id}/conversations"))
        .await
        .expect(StatusCode::OK);
    assert!(
        ids(history["conversations"].as_array().expect("list"))
            .contains(&sms_conversation["id"].as_str().unwrap().to_owned())
    );

    // Request ids: the client's is echoed, otherwise one is made.
    let echoed = acme
        .send(
            acme.request(Method::GET, &conversation_path)
                .header("x-request-id", "req-e2e-42"),
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("req-e2e-42"));
    let made = acme
        .send(
            acme.request(Method::GET, &conversation_path)
                .header("x-request-id", "has spaces in it"),
        )
        .await;
    let made_id = made.header("x-request-id").expect("a request id");
    assert_ne!(made_id, "has spaces in it");
    assert!(uuid::Uuid::parse_str(made_id).is_ok(), "{made_id}");

    // The description is public and is the committed one.
    let doc = read_answer(
        cluster
            .http
            .get(cluster.url("/v1/openapi.json"))
            .send()
            .await
            .expect("get"),
    )
    .await
    .expect(StatusCode::OK);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/openapi.json"))
            .expect("the committed OpenAPI document"),
    )
    .expect("json");
    assert!(
        doc == committed,
        "/v1/openapi.json differs from openapi/openapi.json; update it with \
         YY_UPDATE_OPENAPI=1 cargo nextest run -p yy-gateway openapi"
    );

    cluster.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_messages_are_stored_once_each_in_position_order() {
    let cluster = Cluster::start().await;
    let acme = Tenant::create(&cluster, "Acme").await;
    let contact = acme.contact("web", "visitor-burst").await;
    let conversation = acme.conversation(contact["id"].as_str().unwrap(), "web").await;
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();

    let posts = (0..50).map(|i| {
        let acme = acme.clone();
        let conversation_id = conversation_id.clone();
        async move {
            acme.post(
                &format!("/v1/conversations/{conversation_id}/messages"),
                json!({ "role": "customer", "text": format!("burst message {i}") }),
            )
            .await
        }
    });
    let answers = join_all(posts).await;
    let mut by_position = BTreeMap::new();
    for answer in answers {
        let message = answer.expect(StatusCode::CREATED);
        let position = message["position"].as_u64().expect("position");
        assert!(
            by_position.insert(position, message.clone()).is_none(),
            "position {position} given twice"
        );
    }
    assert_eq!(
        by_position.keys().copied().collect::<Vec<_>>(),
        (1..=50).collect::<Vec<u64>>()
    );

    let history = acme.messages(&conversation_id).await;
    assert_eq!(history.len(), 50, "every message stored exactly once");
    let positions: Vec<u64> = history.iter().map(|m| m["position"].as_u64().unwrap()).collect();
    assert_eq!(
        positions,
        (1..=50).collect::<Vec<u64>>(),
        "history is in position order"
    );
    for message in &history {
        let position = message["position"].as_u64().unwrap();
        assert_eq!(message, &by_position[&position], "history matches what was answered");
    }
    let texts: BTreeSet<String> = history.iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts, (0..50).map(|i| format!("burst message {i}")).collect());
    let after = acme
        .get(&format!("/v1/conversations/{conversation_id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(after["message_count"], 50);

    cluster.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_survive_a_restart() {
    let mut cluster = Cluster::start().await;
    let acme = Tenant::create(&cluster, "Acme").await;
    let contact = acme.contact("web", "visitor-retry").await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();

    // Opening a conversation twice with one key opens one.
    let open = json!({ "contact_id": contact_id, "channel": "web", "subject": "retry me" });
    let first = acme.post_with_key("/v1/conversations", "open-1", open.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = acme.post_with_key("/v1/conversations", "open-1", open.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("content-type"), first.header("content-type"));
    assert_eq!(again.body, first.body);
    assert_eq!(acme.conversations().await.len(), 1);
    let conversation_id = first.body["id"].as_str().unwrap().to_owned();
    let messages_path = format!("/v1/conversations/{conversation_id}/messages");

    // A message posted twice with one key is stored once.
    let hello = json!({ "role": "customer", "text": "hello once" });
    let posted = acme.post_with_key(&messages_path, "msg-1", hello.clone()).await;
    assert_eq!(posted.status, StatusCode::CREATED);
    let replayed = acme.post_with_key(&messages_path, "msg-1", hello.clone()).await;
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, posted.body);
    assert_eq!(acme.messages(&conversation_id).await.len(), 1);

    // The same key with another request is refused, whatever differs.
    acme.post_with_key(
        &messages_path,
        "msg-1",
        json!({ "role": "customer", "text": "something else" }),
    )
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    acme.post_with_key(
        &format!("/v1/conversations/{conversation_id}/resolve"),
        "msg-1",
        hello.clone(),
    )
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(acme.messages(&conversation_id).await.len(), 1);

    // Keys are scoped per tenant: another tenant's identical key is its own.
    let globex = Tenant::create(&cluster, "Globex").await;
    let globex_contact = globex.contact("web", "visitor-retry").await;
    let globex_open = json!({ "contact_id": globex_contact["id"], "channel": "web", "subject": "retry me" });
    let theirs = globex.post_with_key("/v1/conversations", "open-1", globex_open).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_ne!(theirs.body["id"], first.body["id"]);

    // Racing duplicates: one is carried out; the others wait their turn or get its answer.
    let racing = (0..10).map(|_| {
        acme.post_with_key(
            &messages_path,
            "msg-race",
            json!({ "role": "customer", "text": "raced" }),
        )
    });
    let answers = join_all(racing).await;
    let mut bodies = BTreeSet::new();
    for answer in &answers {
        match answer.status {
            StatusCode::CREATED => {
                bodies.insert(answer.body.to_string());
            }
            StatusCode::CONFLICT => {
                answer.expect_problem(StatusCode::CONFLICT, "idempotency-key-in-use");
            }
            other => panic!("unexpected {other}: {:#?}", answer.body),
        }
    }
    assert_eq!(bodies.len(), 1, "every success is the same message");
    assert_eq!(acme.messages(&conversation_id).await.len(), 2);

    // Admin routes take keys too, scoped to the admin.
    let create_tenant = || {
        cluster
            .http
            .post(cluster.url("/admin/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", "open-1")
            .json(&json!({ "name": "Initech" }))
    };
    let tenant = read_answer(create_tenant().send().await.expect("request")).await;
    assert_eq!(tenant.status, StatusCode::CREATED, "{:#?}", tenant.body);
    let tenant_again = read_answer(create_tenant().send().await.expect("request")).await;
    assert_eq!(tenant_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(tenant_again.body["id"], tenant.body["id"]);

    // Keys are checked.
    acme.post_with_key(&messages_path, &"k".repeat(256), hello.clone())
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    // Records outlive the gateway.
    cluster.start_gateway().await;
    let acme = acme.through(&cluster);
    let after_restart = acme.post_with_key(&messages_path, "msg-1", hello.clone()).await;
    assert_eq!(after_restart.status, StatusCode::CREATED);
    assert_eq!(after_restart.header("idempotent-replayed"), Some("true"));
    assert_eq!(after_restart.body, posted.body);
    acme.post_with_key(
        &messages_path,
        "msg-1",
        json!({ "role": "customer", "text": "changed" }),
    )
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(acme.messages(&conversation_id).await.len(), 2);

    // Should the gateway stop after the message was stored but before its response was, the
    // retry is recognised by the conversation service through the command id derived from the
    // key: the same message, not a second one. Losing every record simulates that.
    let nats = async_nats::connect(cluster.nats.url()).await.expect("connect NATS");
    async_nats::jetstream::new(nats)
        .get_stream("KV_YY_IDEMPOTENCY")
        .await
        .expect("the idempotency bucket")
        .purge()
        .await
        .expect("purge");
    let recognised = acme.post_with_key(&messages_path, "msg-1", hello.clone()).await;
    assert_eq!(recognised.status, StatusCode::CREATED, "{:#?}", recognised.body);
    assert_eq!(recognised.header("idempotent-replayed"), None);
    assert_eq!(recognised.body["id"], posted.body["id"]);
    assert_eq!(recognised.body["position"], posted.body["position"]);
    assert_eq!(acme.messages(&conversation_id).await.len(), 2);

    // A failure the client may retry is not recorded: with the conversation service down the
    // answer is 503, and the retry with the same key is carried out once it is back.
    let conversation_service = cluster.conversation.take().expect("running");
    conversation_service.stop().await.expect("stops");
    let down = json!({ "role": "customer", "text": "sent while the service was down" });
    acme.post_with_key(&messages_path, "msg-down", down.clone())
        .await
        .expect_problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    cluster.start_conversation().await;
    cluster.start_gateway().await;
    let acme = acme.through(&cluster);
    let retried = acme.post_with_key(&messages_path, "msg-down", down.clone()).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{:#?}", retried.body);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert_eq!(retried.body["position"], 3);
    let replayed = acme.post_with_key(&messages_path, "msg-down", down).await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(acme.messages(&conversation_id).await.len(), 3);

    cluster.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_precise_problem_and_changes_nothing() {
    let cluster = Cluster::start().await;
    let acme = Tenant::create(&cluster, "Acme").await;
    let contact = acme.contact("web", "visitor-bad").await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let conversation = acme.conversation(&contact_id, "web").await;
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    let messages_path = format!("/v1/conversations/{conversation_id}/messages");
    let conversation_path = format!("/v1/conversations/{conversation_id}");
    acme.message(&conversation_id, "before").await;
    acme.post_with_key(
        &messages_path,
        "used-key",
        json!({ "role": "customer", "text": "keyed" }),
    )
    .await
    .expect(StatusCode::CREATED);

    let messages_before = acme.messages(&conversation_id).await;
    let conversations_before = acme.conversations().await;
    let contact_before = acme
        .get(&format!("/v1/contacts/{contact_id}"))
        .await
        .expect(StatusCode::OK);

    let raw = |path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = acme.request(Method::POST, path).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request
    };
    let json_type = Some("application/json");

    // Malformed JSON.
    let answer = acme
        .send(raw(
            &messages_path,
            json_type,
            b"{\"role\": \"customer\", \"text\": ".to_vec(),
        ))
        .await;
    answer.expect_problem(StatusCode::BAD_REQUEST, "malformed-request");
    // Invalid UTF-8 inside a string.
    let answer = acme
        .send(raw(
            &messages_path,
            json_type,
            b"{\"role\":\"customer\",\"text\":\"\xff\xfe\"}".to_vec(),
        ))
        .await;
    answer.expect_problem(StatusCode::BAD_REQUEST, "malformed-request");
    // Wrong types, missing and unknown fields, unknown enum values: 422 naming the field.
    for (body, field) in [
        (json!({ "role": "customer", "text": 5 }), "text"),
        (json!({ "text": "no role" }), "role"),
        (json!({ "role": "customer", "txt": "typo" }), "txt"),
        (json!({ "role": "client", "text": "hi" }), "client"),
        (
            json!({ "role": "customer", "content": { "cards": [{ "title": 7 }] } }),
            "content.cards[0].title",
        ),
        (json!({ "role": 1, "text": "hi" }), "role"),
        (json!(["customer", "hi"]), "JSON object"),
    ] {
        let answer = acme.post(&messages_path, body.clone()).await;
        let problem = answer.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(field), "{body}: {detail}");
    }
    // A message over 16 KiB of text.
    acme.post(
        &messages_path,
        json!({ "role": "customer", "text": "x".repeat(16 * 1024 + 1) }),
    )
    .await
    .expect_problem(StatusCode::PAYLOAD_TOO_LARGE, "message-too-large");
    // A body over the gateway's limit (1 MiB).
    let oversized = format!(r#"{{"role":"customer","text":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    acme.send(raw(&messages_path, json_type, oversized.into_bytes()))
        .await
        .expect_problem(StatusCode::PAYLOAD_TOO_LARGE, "request-too-large");
    // Wrong or missing content type.
    acme.send(raw(
        &messages_path,
        Some("text/plain"),
        br#"{"role":"customer","text":"hi"}"#.to_vec(),
    ))
    .await
    .expect_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    acme.send(raw(
        &messages_path,
        None,
        br#"{"role":"customer","text":"hi"}"#.to_vec(),
    ))
    .await
    .expect_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    // Unknown ids.
    let missing_conversation = "conv_00000000000000000000000000000000";
    acme.get(&format!("/v1/conversations/{missing_conversation}"))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    acme.post(
        &format!("/v1/conversations/{missing_conversation}/messages"),
        json!({ "role": "customer", "text": "to nowhere" }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND, "not-found");
    acme.get("/v1/conversations/not-even-an-id")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    acme.post(
        "/v1/conversations",
        json!({ "contact_id": "ctc_00000000000000000000000000000000", "channel": "web" }),
    )
    .await
    .expect_problem(StatusCode::NOT_FOUND, "not-found");
    acme.get("/v1/contacts/ctc_00000000000000000000000000000000")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    // Paging and filters out of range.
    for path in [
        format!("{messages_path}?page_size=1000"),
        "/v1/conversations?page_size=1000".to_owned(),
        "/v1/conversations?page_size=0".to_owned(),
        "/v1/conversations?status=open".to_owned(),
        "/v1/conversations?sort=newest".to_owned(),
        format!("/v1/contacts/{contact_id}/conversations?page_size=101"),
    ] {
        acme.get(&path)
            .await
            .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    }
    // A used idempotency key with another body.
    acme.post_with_key(
        &messages_path,
        "used-key",
        json!({ "role": "customer", "text": "other" }),
    )
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    // Values the service refuses.
    acme.post(&format!("{conversation_path}/csat"), json!({ "score": 9 }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    acme.post(&format!("{conversation_path}/csat"), json!({ "score": 4 }))
        .await
        .expect_problem(StatusCode::CONFLICT, "invalid-state");
    acme.patch(&conversation_path, json!({ "status": "open" }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    acme.post(&messages_path, json!({ "role": "customer" }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    acme.post("/v1/contacts", json!({ "name": "no identity" }))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    // Routes and methods that do not exist, and missing credentials.
    let unknown = acme.get("/v1/invoices").await;
    unknown.expect_problem(StatusCode::NOT_FOUND, "not-found");
    assert!(unknown.header("x-request-id").is_some());
    let wrong_method = acme.send(acme.request(Method::DELETE, "/v1/conversations")).await;
    wrong_method.expect_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    let allow = wrong_method.header("allow").expect("Allow");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let anonymous = read_answer(
        cluster
            .http
            .post(cluster.url(&messages_path))
            .json(&json!({ "role": "customer", "text": "who am I" }))
            .send()
            .await
            .expect("request"),
    )
    .await;
    anonymous.expect_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = read_answer(
        cluster
            .http
            .get(cluster.url(&conversation_path))
            .bearer_auth("yy_0000000000000000000000000000000000000000")
            .send()
            .await
            .expect("request"),
    )
    .await;
    forged.expect_problem(StatusCode::UNAUTHORIZED, "unauthorized");

    // Nothing was written, and everything still answers.
    assert_eq!(acme.messages(&conversation_id).await, messages_before);
    assert_eq!(acme.conversations().await, conversations_before);
    assert_eq!(
        acme.get(&format!("/v1/contacts/{contact_id}"))
            .await
            .expect(StatusCode::OK),
        contact_before
    );
    let next = acme.message(&conversation_id, "still here").await;
    assert_eq!(next["position"], messages_before.len() as u64 + 1);

    cluster.stop().await;
}

/// One REST operation of the OpenAPI document, with the ids of tenant A substituted.
struct Case {
    method: Method,
    template: String,
    path: String,
    body: Option<Value>,
}

#[tokio::test]
async fn another_tenants_ids_answer_404_on_every_route_and_change_nothing() {
    let cluster = Cluster::start_with_everything().await;
    let acme = Tenant::create(&cluster, "Acme").await;
    let globex = Tenant::create(&cluster, "Globex").await;
    let agent_id = "agt_acme";
    // Nothing listens there either; the connector is only ever read and refused.
    let connector_settings = json!({
        "name": "Helpdesk", "kind": "ticket_system", "base_url": "http://127.0.0.1:9",
        "auth": {"bearer": {"token": "acme-helpdesk-token"}},
        "ticket_system": {"create": {"method": "POST", "path": "/tickets"}, "outbound": false}
    });
    let connector = acme
        .post("/v1/connectors", connector_settings.clone())
        .await
        .expect(StatusCode::CREATED);
    let connector_id = connector["id"].as_str().unwrap().to_owned();
    // Globex's own CRM, so that a lookup of Acme's contact is refused for the contact, not for
    // the lack of a CRM.
    globex
        .post(
            "/v1/connectors",
            json!({"name": "CRM", "kind": "crm", "base_url": "http://127.0.0.1:9",
                   "crm": {"lookup": {"method": "GET", "path": "/customers/{{contact.id}}"},
                           "attributes": {"tier": "/customer/tier"}}}),
        )
        .await
        .expect(StatusCode::CREATED);
    // Nothing listens there: the one message it gets fails for good within a second, after
    // which the endpoint, its messages and attempts stay as they are.
    let endpoint = acme
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["conversation.created"]}),
        )
        .await
        .expect(StatusCode::CREATED);
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    acme.put(
        &format!("/v1/agents/{agent_id}"),
        json!({"name": "Acme's agent", "capacity": {"web": 1}}),
    )
    .await
    .expect(StatusCode::OK);

    let contact = acme.contact("web", "visitor-acme").await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let conversation = acme.conversation(&contact_id, "web").await;
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();
    acme.message(&conversation_id, "private").await;
    let ticket = acme
        .post(
            &format!("/v1/conversations/{conversation_id}/tickets"),
            json!({"subject": "Acme's own"}),
        )
        .await
        .expect(StatusCode::CREATED);
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();
    let globex_contact = globex.contact("web", "visitor-globex").await;
    let globex_contact_id = globex_contact["id"].as_str().unwrap().to_owned();
    let webhook_messages = format!("/v1/webhooks/endpoints/{endpoint_id}/messages");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let message_id = loop {
        let failed = acme
            .get(&format!("{webhook_messages}?status=failed"))
            .await
            .expect(StatusCode::OK);
        if let Some(id) = failed["messages"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "the webhook message never failed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let snapshot = |tenant: Tenant| {
        let contact_id = contact_id.clone();
        let conversation_id = conversation_id.clone();
        let endpoint_id = endpoint_id.clone();
        let webhook_messages = webhook_messages.clone();
        let ticket_id = ticket_id.clone();
        let connector_id = connector_id.clone();
        async move {
            (
                tenant
                    .get(&format!("/v1/contacts/{contact_id}"))
                    .await
                    .expect(StatusCode::OK),
                tenant
                    .get(&format!("/v1/conversations/{conversation_id}"))
                    .await
                    .expect(StatusCode::OK),
                tenant.messages(&conversation_id).await,
                tenant.conversations().await,
                tenant
                    .get(&format!("/v1/agents/{agent_id}"))
                    .await
                    .expect(StatusCode::OK),
                tenant
                    .get(&format!("/v1/conversations/{conversation_id}/routing"))
                    .await
                    .expect(StatusCode::OK),
                tenant
                    .get(&format!("/v1/webhooks/endpoints/{endpoint_id}"))
                    .await
                    .expect(StatusCode::OK),
                tenant.get(&webhook_messages).await.expect(StatusCode::OK),
                tenant
                    .get(&format!("/v1/webhooks/endpoints/{endpoint_id}/attempts"))
                    .await
                    .expect(StatusCode::OK),
                (
                    tenant
                        .get(&format!("/v1/tickets/{ticket_id}"))
                        .await
                        .expect(StatusCode::OK),
                    tenant
                        .get(&format!("/v1/connectors/{connector_id}"))
                        .await
                        .expect(StatusCode::OK),
                ),
            )
        }
    };
    let before = snapshot(acme.clone()).await;

    // Every operation with an id in its path, taken from the API's own description, so a new
    // route cannot be left out.
    let doc = read_answer(
        cluster
            .http
            .get(cluster.url("/v1/openapi.json"))
            .send()
            .await
            .expect("get"),
    )
    .await
    .expect(StatusCode::OK);
    let mut cases = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.starts_with("/v1/") || !template.contains('{') || template.contains("/events") {
            continue;
        }
        // External ticket systems call this one without any API key, naming the tenant in the
        // path; it answers 401 to anything unsigned whatever the ids, which the ticket tests
        // check. A key, Globex's or any, plays no part in it.
        if template.starts_with("/v1/inbound/") {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            // Creating or replacing by name acts within the caller's own tenant; the snapshot
            // below shows that Acme's agent is untouched.
            if method == "put" && ["/v1/agents/{agent_id}", "/v1/queues/{queue}"].contains(&template.as_str()) {
                continue;
            }
            let path = template
                .replace("{contact_id}", &contact_id)
                .replace("{conversation_id}", &conversation_id)
                .replace("{agent_id}", agent_id)
                .replace("{endpoint_id}", &endpoint_id)
                .replace("{message_id}", &message_id)
                .replace("{ticket_id}", &ticket_id)
                .replace("{connector_id}", &connector_id);
            assert!(!path.contains('{'), "a parameter of {template} has no id to use");
            let body = match (method.as_str(), template.as_str()) {
                ("get", _) => None,
                ("post", "/v1/contacts/{contact_id}/identities") => {
                    Some(json!({ "channel": "whatsapp", "external_id": "+8613700137000" }))
                }
                ("post", "/v1/contacts/{contact_id}/merge") => Some(json!({ "source_contact_id": globex_contact_id })),
                ("patch", "/v1/conversations/{conversation_id}") => Some(json!({ "priority": "urgent" })),
                (
                    "post",
                    "/v1/conversations/{conversation_id}/resolve" | "/v1/conversations/{conversation_id}/reopen",
                ) => None,
                ("post", "/v1/conversations/{conversation_id}/messages") => {
                    Some(json!({ "role": "customer", "text": "not yours" }))
                }
                ("post", "/v1/conversations/{conversation_id}/csat") => Some(json!({ "score": 1 })),
                ("put", "/v1/agents/{agent_id}/presence") => Some(json!({ "presence": "online" })),
                (
                    "post",
                    "/v1/agents/{agent_id}/offers/{conversation_id}/accept"
                    | "/v1/agents/{agent_id}/offers/{conversation_id}/reject"
                    | "/v1/agents/{agent_id}/conversations/{conversation_id}/resolve",
                ) => None,
                (
                    "post",
                    "/v1/agents/{agent_id}/conversations/{conversation_id}/reply"
                    | "/v1/agents/{agent_id}/conversations/{conversation_id}/notes",
                ) => Some(json!({ "text": "not yours" })),
                ("post", "/v1/agents/{agent_id}/conversations/{conversation_id}/transfer") => {
                    Some(json!({ "bot": true }))
                }
                ("patch", "/v1/webhooks/endpoints/{endpoint_id}") => Some(json!({ "description": "not yours" })),
                ("delete", "/v1/webhooks/endpoints/{endpoint_id}") => None,
                (
                    "post",
                    "/v1/webhooks/endpoints/{endpoint_id}/enable"
                    | "/v1/webhooks/endpoints/{endpoint_id}/disable"
                    | "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
                ) => None,
                ("post", "/v1/webhooks/endpoints/{endpoint_id}/replay") => {
                    Some(json!({ "since": "2000-01-01T00:00:00Z" }))
                }
                ("patch", "/v1/tickets/{ticket_id}") => Some(json!({ "priority": "urgent" })),
                ("post", "/v1/tickets/{ticket_id}/status") => Some(json!({ "status": "open" })),
                ("post", "/v1/tickets/{ticket_id}/comments") => Some(json!({ "body": "not yours" })),
                ("post", "/v1/tickets/{ticket_id}/conversations") => {
                    Some(json!({ "conversation_id": conversation_id }))
                }
                ("delete", "/v1/tickets/{ticket_id}/conversations/{conversation_id}") => None,
                ("post", "/v1/conversations/{conversation_id}/tickets") => Some(json!({ "subject": "not yours" })),
                ("put", "/v1/connectors/{connector_id}") => Some(connector_settings.clone()),
                ("delete", "/v1/connectors/{connector_id}") => None,
                ("post", "/v1/connectors/{connector_id}/kb-feed") => Some(json!([])),
                ("post", "/v1/contacts/{contact_id}/crm-profile") => None,
                (method, template) => panic!("no case for {method} {template}: add one"),
            };
            cases.push(Case {
                method: method.to_uppercase().parse().expect("method"),
                template: template.clone(),
                path,
                body,
            });
        }
    }
    assert!(cases.len() >= 11, "only {} cases", cases.len());
    // Ids given in bodies and filters are the other tenant's too.
    cases.push(Case {
        method: Method::POST,
        template: "/v1/contacts/{own}/merge with the other's source".into(),
        path: format!("/v1/contacts/{globex_contact_id}/merge"),
        body: Some(json!({ "source_contact_id": contact_id })),
    });
    cases.push(Case {
        method: Method::POST,
        template: "/v1/webhooks/endpoints/{endpoint_id}/replay of one message".into(),
        path: format!("/v1/webhooks/endpoints/{endpoint_id}/replay"),
        body: Some(json!({ "message_id": message_id })),
    });
    cases.push(Case {
        method: Method::GET,
        template: "/v1/conversations filtered by the other's contact".into(),
        path: format!("/v1/conversations?contact_id={contact_id}"),
        body: None,
    });
    cases.push(Case {
        method: Method::POST,
        template: "/v1/conversations with the other's contact".into(),
        path: "/v1/conversations".into(),
        body: Some(json!({ "contact_id": contact_id, "channel": "web" })),
    });

    let send = |path: String, case: &Case| {
        let mut request = globex.request(case.method.clone(), &path);
        if let Some(body) = &case.body {
            request = request.json(body);
        }
        globex.send(request)
    };
    for case in &cases {
        let answer = send(case.path.clone(), case).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{} {}: {:#?}",
            case.method,
            case.template,
            answer.body
        );
        answer.expect_problem(StatusCode::NOT_FOUND, "not-found");
    }

    // Lists and upserts stay within the tenant.
    assert!(globex.conversations().await.is_empty());
    for filter in [
        format!("contact_id={contact_id}"),
        format!("conversation_id={conversation_id}"),
    ] {
        let tickets = globex
            .get(&format!("/v1/tickets?{filter}"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(tickets["tickets"], json!([]), "{filter}");
    }
    let connectors = globex.get("/v1/connectors").await.expect(StatusCode::OK);
    assert_eq!(connectors["connectors"].as_array().map(Vec::len), Some(1));
    assert_eq!(connectors["connectors"][0]["kind"], "crm");
    let same_identity = globex.contact("web", "visitor-acme").await;
    assert_ne!(same_identity["id"], contact_id.as_str());
    assert_eq!(
        same_identity["identities"],
        json!([{ "channel": "web", "external_id": "visitor-acme" }])
    );

    let after = snapshot(acme.clone()).await;
    assert_eq!(after, before, "tenant A's data is unchanged");

    cluster.stop().await;
}
