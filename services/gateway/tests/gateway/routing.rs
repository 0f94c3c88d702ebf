//! Routing through the gateway: rules, intents, agents, queues, the agent workspace and queue
//! positions over REST, and `yy.routing.v1.RoutingService` over gRPC, against real conversation
//! and routing services.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::transport::Channel;
use yy_proto::routing::v1 as pb;
use yy_proto::routing::v1::routing_service_client::RoutingServiceClient;

use crate::support::Cluster;

/// One tenant's REST calls.
struct Api<'a> {
    cluster: &'a Cluster,
    key: String,
}

/// An answer: status, content type and the JSON body (`Null` when there is none).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    /// `Idempotent-Replayed: true` was sent.
    replayed: bool,
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

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with_key(method, path, body, None).await
    }

    async fn call_with_key(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Answer {
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
        let replayed = response.headers().contains_key("idempotent-replayed");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Answer {
            status,
            content_type,
            replayed,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A POST without a body.
    async fn act(&self, path: &str) -> Answer {
        self.call(Method::POST, path, None).await
    }

    /// A new web conversation of a new contact; returns its id.
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

    async fn customer_says(&self, conversation_id: &str, text: &str) {
        self.post(
            &format!("/v1/conversations/{conversation_id}/messages"),
            json!({"role": "customer", "text": text}),
        )
        .await
        .expect(StatusCode::CREATED);
    }
}

/// Polls `check` until it returns something, for what the routing service does after a message
/// is stored (it follows the conversation log).
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

fn with_key<T>(key: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().expect("metadata"));
    request
}

#[tokio::test]
async fn routing_routes_require_an_api_key() {
    let cluster = Cluster::start_with_routing().await;
    let anonymous = |method: Method, path: &str| cluster.http.request(method, cluster.url(path));
    for (method, path) in [
        (Method::GET, "/v1/routing/rules"),
        (Method::PUT, "/v1/routing/rules"),
        (Method::GET, "/v1/routing/intents"),
        (Method::POST, "/v1/routing/analyze"),
        (Method::GET, "/v1/agents"),
        (Method::PUT, "/v1/agents/agt_a"),
        (Method::PUT, "/v1/agents/agt_a/presence"),
        (Method::GET, "/v1/agents/agt_a/conversations"),
        (Method::POST, "/v1/agents/agt_a/offers/conv_1/accept"),
        (Method::POST, "/v1/agents/agt_a/conversations/conv_1/reply"),
        (Method::GET, "/v1/queues"),
        (Method::PUT, "/v1/queues/vip"),
        (Method::GET, "/v1/conversations/conv_1/routing"),
        (Method::GET, "/v1/conversations/conv_1/notes"),
    ] {
        let response = anonymous(method.clone(), path)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["type"], "/problems/unauthorized", "{method} {path}");
        let response = anonymous(method.clone(), path)
            .bearer_auth("yy_not-a-key")
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a bad key"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn an_invalid_rule_set_is_refused_naming_the_rule_and_a_valid_one_is_published() {
    let cluster = Cluster::start_with_routing().await;
    let api = Api::new(&cluster, "Rules").await;

    let builtin = api.get("/v1/routing/rules").await.expect(StatusCode::OK);
    assert_eq!(builtin["version"], 0);
    assert!(builtin["rules"]["rules"].is_array(), "{builtin:#}");
    assert!(builtin.get("published_at").is_none(), "{builtin:#}");

    api.put("/v1/queues/vip", json!({})).await.expect(StatusCode::OK);
    let invalid = json!({
        "version": 1,
        "rules": [
            {"name": "vip-angry", "when": {"sentiment": {"below": -3}},
             "then": {"route": "queue", "queue": "vip", "priority": 9}},
            {"name": "default", "then": {"route": "bot"}}
        ]
    });
    let answer = api.put("/v1/routing/rules", invalid).await;
    let detail = answer.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert!(detail.contains("vip-angry"), "{detail}");
    assert!(detail.contains("when.sentiment.below"), "{detail}");
    // Nothing was published.
    assert_eq!(api.get("/v1/routing/rules").await.expect(StatusCode::OK)["version"], 0);

    // The gateway refuses what is not a JSON object before the routing service sees it.
    api.put("/v1/routing/rules", json!([1, 2]))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    let valid = json!({
        "version": 1,
        "rules": [
            {"name": "vip-angry", "when": {"sentiment": {"below": -0.5}, "contact_attributes": {"tier": {"one_of": ["vip"]}}},
             "then": {"route": "queue", "queue": "vip", "priority": 9}},
            {"name": "handoff", "when": {"handoff_requested": true},
             "then": {"route": "queue", "queue": "general", "priority": 5}},
            {"name": "default", "then": {"route": "bot"}}
        ]
    });
    let published = api.put("/v1/routing/rules", valid.clone()).await.expect(StatusCode::OK);
    assert_eq!(published["version"], 1);
    assert_eq!(published["rules"], valid, "the rule set comes back as a JSON object");
    assert!(published["published_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(api.get("/v1/routing/rules").await.expect(StatusCode::OK), published);
    // A version must grow.
    api.put("/v1/routing/rules", valid)
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    let analysis = api
        .post(
            "/v1/routing/analyze",
            json!({"text": "我要转人工", "contact_attributes": {"tier": "vip"}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(analysis["rule_name"], "handoff", "{analysis:#}");
    assert!(analysis["decision"].is_object(), "{analysis:#}");
    assert_eq!(analysis["understanding"]["language"], "zh", "{analysis:#}");

    cluster.stop().await;
}

#[tokio::test]
async fn intents_are_set_and_read_as_json() {
    let cluster = Cluster::start_with_routing().await;
    let api = Api::new(&cluster, "Intents").await;
    let builtin = api.get("/v1/routing/intents").await.expect(StatusCode::OK);
    assert_eq!(builtin["intents"], json!([]), "{builtin:#}");
    assert!(
        builtin["names"].as_array().is_some_and(|n| !n.is_empty()),
        "{builtin:#}"
    );

    let intents = json!({
        "intents": [{"name": "warranty", "examples": ["保修多久", "how long is the warranty", "还在保修期吗"]}],
        "extend_default": true
    });
    let set = api
        .put("/v1/routing/intents", intents.clone())
        .await
        .expect(StatusCode::OK);
    assert_eq!(set["intents"], intents["intents"]);
    assert_eq!(set["extend_default"], true);
    let names: Vec<&str> = set["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"warranty") && names.len() > 1, "{names:?}");
    assert_eq!(api.get("/v1/routing/intents").await.expect(StatusCode::OK), set);
    api.put("/v1/routing/intents", json!({"intents": [], "extend_defaults": true}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    cluster.stop().await;
}

#[tokio::test]
async fn agents_queues_and_presence_round_trip() {
    let cluster = Cluster::start_with_routing().await;
    let api = Api::new(&cluster, "Desk").await;
    let other = Api::new(&cluster, "Other").await;

    let queue = json!({
        "strategy": "round_robin",
        "offer_timeout_ms": 20000,
        "first_response_secs": 60,
        "max_wait_secs": 300,
        "escalation": [
            {"after_secs": 30, "hold_message": "All our agents are busy; please hold on."},
            {"after_secs": 60, "raise_priority_to": 8},
            {"after_secs": 120, "overflow_to_queue": "general"}
        ]
    });
    api.put("/v1/queues/general", json!({})).await.expect(StatusCode::OK);
    let vip = api.put("/v1/queues/vip", queue.clone()).await.expect(StatusCode::OK);
    assert_eq!(vip["name"], "vip");
    assert_eq!(vip["strategy"], "round_robin");
    assert_eq!(vip["offer_timeout_ms"], 20000);
    assert_eq!(vip["escalation"], queue["escalation"]);
    assert_eq!(vip["waiting"], json!([]));
    let queues = api.get("/v1/queues").await.expect(StatusCode::OK);
    let names: Vec<&Value> = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| &q["name"])
        .collect();
    assert_eq!(names, ["general", "vip"]);
    let two_actions = api
        .put(
            "/v1/queues/vip",
            json!({"escalation": [{"after_secs": 5, "raise_priority_to": 8, "hold_message": "x"}]}),
        )
        .await;
    let detail = two_actions.expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert!(detail.contains("escalation[0]"), "{detail}");
    api.put("/v1/queues/vip", json!({"strategy": "fastest"}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    let profile = json!({
        "name": "Li Wei",
        "skills": {"complaints": 4, "refund": 3},
        "languages": ["en", "zh"],
        "capacity": {"web": 3, "whatsapp": 2},
        "queues": ["general", "vip"]
    });
    let agent = api
        .put("/v1/agents/agt_li_wei", profile.clone())
        .await
        .expect(StatusCode::OK);
    for field in ["name", "skills", "languages", "capacity", "queues"] {
        assert_eq!(agent[field], profile[field], "{field}");
    }
    assert_eq!(agent["id"], "agt_li_wei");
    assert_eq!(agent["presence"], "offline");
    assert_eq!(api.get("/v1/agents/agt_li_wei").await.expect(StatusCode::OK), agent);
    let renamed = api
        .put(
            "/v1/agents/agt_li_wei",
            json!({"name": "Li Wei (lead)", "capacity": {"web": 1}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(renamed["name"], "Li Wei (lead)");
    assert_eq!(renamed["skills"], json!({}));
    api.put(
        "/v1/agents/agt_zhao",
        json!({"name": "Zhao Min", "capacity": {"web": 2}}),
    )
    .await
    .expect(StatusCode::OK);
    let agents = api.get("/v1/agents").await.expect(StatusCode::OK);
    let ids: Vec<&Value> = agents["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, ["agt_li_wei", "agt_zhao"]);

    let online = api
        .put("/v1/agents/agt_li_wei/presence", json!({"presence": "online"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(online["presence"], "online");
    assert_eq!(
        api.get("/v1/agents/agt_li_wei").await.expect(StatusCode::OK)["presence"],
        "online"
    );
    api.put("/v1/agents/agt_li_wei/presence", json!({"presence": "busy"}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    api.put("/v1/agents/agt_li_wei", json!({"name": "x", "skill": {}}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    api.put("/v1/agents/agt_nobody/presence", json!({"presence": "online"}))
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    api.get("/v1/agents/agt_nobody")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    // The routing service checks the id's form; its message comes through.
    let detail = api
        .put("/v1/agents/li_wei", json!({"name": "x"}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");
    assert!(detail.contains("agt_"), "{detail}");

    // Another tenant sees none of it.
    assert_eq!(
        other.get("/v1/agents").await.expect(StatusCode::OK)["agents"],
        json!([])
    );
    assert_eq!(
        other.get("/v1/queues").await.expect(StatusCode::OK)["queues"],
        json!([])
    );
    other
        .get("/v1/agents/agt_li_wei")
        .await
        .expect_problem(StatusCode::NOT_FOUND, "not-found");
    cluster.stop().await;
}

#[tokio::test]
async fn a_customer_asking_for_a_human_waits_then_an_agent_takes_it_over_rest() {
    let cluster = Cluster::start_with_routing().await;
    let api = Api::new(&cluster, "Shop").await;
    let conversation = api.conversation("visitor-1").await;
    let routing = format!("/v1/conversations/{conversation}/routing");

    let status = api.get(&routing).await.expect(StatusCode::OK);
    assert_eq!(status["state"], "bot", "{status:#}");
    api.customer_says(&conversation, "你好，我的订单还没到，转人工").await;

    let waiting = eventually("the conversation to wait in a queue", || async {
        let status = api.get(&routing).await.expect(StatusCode::OK);
        (status["state"] == "waiting").then_some(status)
    })
    .await;
    assert_eq!(waiting["conversation_id"], conversation.as_str());
    assert_eq!(waiting["queue"], "general", "{waiting:#}");
    assert_eq!(waiting["position"], 1, "{waiting:#}");
    assert!(
        waiting["priority"].as_u64().is_some_and(|p| (1..=10).contains(&p)),
        "{waiting:#}"
    );
    assert!(waiting.get("agent_id").is_none(), "{waiting:#}");
    let queues = api.get("/v1/queues").await.expect(StatusCode::OK);
    let general = queues["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == "general")
        .expect("the general queue")
        .clone();
    assert_eq!(general["waiting"], json!([conversation]));

    let agent = "agt_li_wei";
    api.put(
        &format!("/v1/agents/{agent}"),
        json!({"name": "Li Wei", "languages": ["zh"], "capacity": {"web": 2}}),
    )
    .await
    .expect(StatusCode::OK);
    api.put(&format!("/v1/agents/{agent}/presence"), json!({"presence": "online"}))
        .await
        .expect(StatusCode::OK);

    let desk = format!("/v1/agents/{agent}/conversations");
    let offer = eventually("the offer to the online agent", || async {
        let list = api.get(&desk).await.expect(StatusCode::OK);
        list["conversations"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["state"] == "offered").cloned())
    })
    .await;
    assert_eq!(offer["conversation_id"], conversation.as_str());
    assert_eq!(offer["channel"], "web");
    assert!(
        offer["offer_expires_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{offer:#}"
    );
    let handoff = &offer["handoff"];
    assert_eq!(handoff["reason"], "customer_request", "{offer:#}");
    let recent = handoff["recent_messages"].as_array().expect("recent messages");
    assert!(
        recent
            .iter()
            .any(|m| m["role"] == "customer" && m["text"].as_str().is_some_and(|t| t.contains("转人工"))),
        "{offer:#}"
    );
    assert!(handoff["understanding"]["intents"].is_array(), "{offer:#}");
    let offered = api.get(&routing).await.expect(StatusCode::OK);
    assert_eq!(offered["state"], "offered");
    assert_eq!(offered["agent_id"], agent);

    // Only the agent it is offered to may accept it.
    api.put("/v1/agents/agt_other", json!({"name": "Other", "capacity": {"web": 1}}))
        .await
        .expect(StatusCode::OK);
    api.act(&format!("/v1/agents/agt_other/offers/{conversation}/accept"))
        .await
        .expect_problem(StatusCode::CONFLICT, "invalid-state");
    let accepted = api
        .act(&format!("/v1/agents/{agent}/offers/{conversation}/accept"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(accepted["state"], "assigned", "{accepted:#}");
    assert!(accepted.get("offer_expires_at").is_none(), "{accepted:#}");
    let assigned = eventually("the assignment to show", || async {
        let status = api.get(&routing).await.expect(StatusCode::OK);
        (status["state"] == "assigned").then_some(status)
    })
    .await;
    assert_eq!(assigned["agent_id"], agent);
    assert!(assigned.get("position").is_none(), "{assigned:#}");

    let workspace = format!("/v1/agents/{agent}/conversations/{conversation}");
    let reply_path = format!("{workspace}/reply");
    let reply_once = || {
        api.call_with_key(
            Method::POST,
            &reply_path,
            Some(json!({"text": "您好，我是李伟，马上为您查询。"})),
            Some("reply-1"),
        )
    };
    let first = reply_once().await;
    assert!(!first.replayed);
    let reply = first.expect(StatusCode::CREATED);
    // A retry with the same key is answered with the first reply, not posted again.
    let retried = reply_once().await;
    assert!(retried.replayed);
    assert_eq!(retried.expect(StatusCode::CREATED), reply);
    assert_eq!(reply["role"], "agent", "{reply:#}");
    assert_eq!(reply["conversation_id"], conversation.as_str());
    assert_eq!(reply["author_id"], agent, "{reply:#}");
    assert!(reply["id"].as_str().is_some_and(|id| id.starts_with("msg_")));
    let messages = api
        .get(&format!("/v1/conversations/{conversation}/messages"))
        .await
        .expect(StatusCode::OK);
    let agent_messages: Vec<&Value> = messages["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "agent")
        .collect();
    assert_eq!(agent_messages, [&reply], "{messages:#}");
    // Someone else's conversation cannot be answered.
    api.post(
        &format!("/v1/agents/agt_other/conversations/{conversation}/reply"),
        json!({"text": "hi"}),
    )
    .await
    .expect_problem(StatusCode::CONFLICT, "invalid-state");
    api.post(&format!("{workspace}/reply"), json!({"txt": "typo"}))
        .await
        .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    let note = api
        .post(
            &format!("{workspace}/notes"),
            json!({"text": "Promised a call-back before 18:00."}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(note["agent_id"], agent);
    assert!(
        note["id"].as_str().is_some_and(|id| id.starts_with("note_")),
        "{note:#}"
    );
    let notes = api
        .get(&format!("/v1/conversations/{conversation}/notes"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(notes["notes"], json!([note]));

    api.post(
        &format!("{workspace}/transfer"),
        json!({"queue": "general", "bot": true}),
    )
    .await
    .expect_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation-failed");

    let resolved = api.act(&format!("{workspace}/resolve")).await.expect(StatusCode::OK);
    assert_eq!(resolved["id"], conversation.as_str());
    assert_eq!(resolved["status"], "resolved", "{resolved:#}");
    let freed = eventually("the agent's capacity to be freed", || async {
        let agent = api.get(&format!("/v1/agents/{agent}")).await.expect(StatusCode::OK);
        agent["assigned"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(agent)
    })
    .await;
    assert_eq!(freed["presence"], "online");
    assert_eq!(api.get(&desk).await.expect(StatusCode::OK)["conversations"], json!([]));
    cluster.stop().await;
}

#[tokio::test]
async fn the_routing_service_is_served_over_grpc_with_an_api_key() {
    let cluster = Cluster::start_with_routing().await;
    let a = cluster.create_tenant("A").await;
    let b = cluster.create_tenant("B").await;
    let mut client: RoutingServiceClient<Channel> = RoutingServiceClient::connect(cluster.grpc_url())
        .await
        .expect("connect");

    let refused = client
        .get_rules(tonic::Request::new(pb::GetRulesRequest {}))
        .await
        .expect_err("no key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = client
        .get_rules(with_key("yy_not-a-key", pb::GetRulesRequest {}))
        .await
        .expect_err("bad key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let rules = client
        .get_rules(with_key(&a.key, pb::GetRulesRequest {}))
        .await
        .expect("rules")
        .into_inner();
    assert_eq!(rules.version, 0);
    assert!(rules.rules_json.contains("\"rules\""), "{}", rules.rules_json);

    let agent = client
        .put_agent(with_key(
            &a.key,
            pb::PutAgentRequest {
                agent_id: "agt_grpc".into(),
                profile: Some(pb::AgentProfile {
                    name: "Over gRPC".into(),
                    capacity: [("web".to_owned(), 1)].into_iter().collect(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .expect("put agent")
        .into_inner();
    assert_eq!(agent.agent_id, "agt_grpc");
    // The same agent over REST, in the key's tenant.
    let rest = cluster
        .http
        .get(cluster.url("/v1/agents/agt_grpc"))
        .bearer_auth(&a.key)
        .send()
        .await
        .expect("get");
    assert_eq!(rest.status(), StatusCode::OK);
    let rest: Value = rest.json().await.expect("agent");
    assert_eq!(rest["name"], "Over gRPC");

    // Errors keep their code and `yy-error` slug through the gateway.
    let invalid = client
        .put_rules(with_key(
            &a.key,
            pb::PutRulesRequest {
                rules_json: r#"{"version": 1, "rules": []}"#.into(),
            },
        ))
        .await
        .expect_err("no default rule");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        invalid.metadata().get("yy-error").and_then(|v| v.to_str().ok()),
        Some("validation-failed")
    );

    // Tenant B sees nothing of A, even naming A's tenant in the metadata itself.
    let mut forged = with_key(
        &b.key,
        pb::GetAgentRequest {
            agent_id: "agt_grpc".into(),
        },
    );
    forged
        .metadata_mut()
        .insert("x-yy-tenant", a.id.parse().expect("metadata"));
    let hidden = client.get_agent(forged).await.expect_err("another tenant's agent");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let listed = client
        .list_agents(with_key(&b.key, pb::ListAgentsRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.agents.is_empty());
    cluster.stop().await;
}
