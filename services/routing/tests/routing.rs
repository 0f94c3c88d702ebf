//! The routing service end to end: the real binary (killed and restarted where a test says so),
//! the conversation service, and a real nats-server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_eventlog::{EventLog, LogConfig, LogContext, NatsConfig, Payload, Record};
use yy_proto::conversation::v1 as conv;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::routing::v1 as pb;
use yy_proto::routing::v1::routing_service_client::RoutingServiceClient;
use yy_runtime::{Listeners, RunError, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, ServiceProcess, spawn_service};

const TENANT: &str = "ten_routing";
const ANGRY_VIP: &str = "你们的服务太差了！气死我了，订单到现在还没发货！";

/// nats, the conversation service in-process and the routing service as a process.
struct Cluster {
    nats: NatsServer,
    conversation: RunningService<RunError>,
    routing: ServiceProcess,
    routing_env: Vec<(String, String)>,
    /// Where the current routing process serves gRPC, for clients that outlive a restart.
    routing_addr: Arc<RwLock<String>>,
}

impl Cluster {
    async fn start(time_scale: f64) -> Cluster {
        let nats = NatsServer::start();
        let config: ServiceConfig<yy_conversation::ConversationConfig> = ServiceConfig {
            nats: NatsConfig {
                url: nats.url(),
                monitor_url: Some(nats.monitor_url()),
                ..NatsConfig::default()
            },
            eventlog: LogConfig {
                partitions: 2,
                ..LogConfig::default()
            },
            ..ServiceConfig::default()
        };
        let conversation = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_conversation::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", conversation.http), String::new).await;
        let routing_env = vec![
            (
                "UPSTREAM__CONVERSATION".to_owned(),
                format!("http://{}", conversation.grpc),
            ),
            ("ROUTING__TIME_SCALE".to_owned(), time_scale.to_string()),
        ];
        let routing = start_routing(&nats, &routing_env).await;
        let routing_addr = Arc::new(RwLock::new(format!("http://127.0.0.1:{}", routing.grpc)));
        Cluster {
            nats,
            conversation,
            routing,
            routing_env,
            routing_addr,
        }
    }

    /// Kills the routing process without warning and starts a new one.
    async fn crash_and_restart_routing(&mut self) {
        self.routing.signal("KILL");
        self.routing.wait_exit(Duration::from_secs(10));
        self.routing = start_routing(&self.nats, &self.routing_env).await;
        *self.routing_addr.write().unwrap() = format!("http://127.0.0.1:{}", self.routing.grpc);
    }

    async fn conversations(&self) -> ConversationServiceClient<Channel> {
        ConversationServiceClient::connect(format!("http://{}", self.conversation.grpc))
            .await
            .expect("connect to conversation")
    }

    async fn routing(&self) -> RoutingServiceClient<Channel> {
        routing_client(&self.routing_addr).await.expect("connect to routing")
    }

    async fn log(&self) -> EventLog {
        let nats = NatsConfig {
            url: self.nats.url(),
            ..NatsConfig::default()
        };
        EventLog::connect(
            &nats,
            LogConfig {
                partitions: 2,
                ..LogConfig::default()
            },
            "routing-test",
        )
        .await
        .expect("connect to the log")
    }

    /// Every event of the tenant's desk, in order, commit by commit.
    async fn desk(&self) -> Vec<Record> {
        self.log()
            .await
            .load(LogContext::ROUTING, TENANT, &format!("desk_{TENANT}"))
            .await
            .expect("load the desk")
            .0
    }
}

async fn start_routing(nats: &NatsServer, env: &[(String, String)]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let routing = ServiceProcess::start("routing", nats, &env);
    wait_ready(&routing.url("/readyz"), || routing.log()).await;
    routing
}

async fn routing_client(addr: &RwLock<String>) -> Result<RoutingServiceClient<Channel>, tonic::transport::Error> {
    let addr = addr.read().unwrap().clone();
    RoutingServiceClient::connect(addr).await
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

/// A contact with `attributes` and an open web conversation with it.
async fn conversation_with(
    client: &mut ConversationServiceClient<Channel>,
    who: &str,
    attributes: &[(&str, &str)],
) -> String {
    let contact = client
        .upsert_contact(as_tenant(conv::UpsertContactRequest {
            identity: Some(conv::ChannelIdentity {
                channel: "web".into(),
                external_id: who.into(),
            }),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
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

async fn customer_says(client: &mut ConversationServiceClient<Channel>, conversation: &str, text: &str) {
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

async fn routing_status(routing: &mut RoutingServiceClient<Channel>, conversation: &str) -> pb::RoutingStatus {
    routing
        .get_routing_status(as_tenant(pb::GetRoutingStatusRequest {
            conversation_id: conversation.into(),
        }))
        .await
        .expect("routing status")
        .into_inner()
}

async fn wait_state(routing: &mut RoutingServiceClient<Channel>, conversation: &str, state: &str) -> pb::RoutingStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = routing_status(routing, conversation).await;
        if status.state == state {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{conversation} never became {state}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn conversation_status(
    client: &mut ConversationServiceClient<Channel>,
    conversation: &str,
) -> conv::Conversation {
    client
        .get_conversation(as_tenant(conv::GetConversationRequest {
            conversation_id: conversation.into(),
        }))
        .await
        .expect("get conversation")
        .into_inner()
}

async fn put_queue(routing: &mut RoutingServiceClient<Channel>, request: pb::PutQueueRequest) {
    routing.put_queue(as_tenant(request)).await.expect("put queue");
}

async fn put_agent(routing: &mut RoutingServiceClient<Channel>, agent: &str, capacity: u32, queues: &[&str]) {
    routing
        .put_agent(as_tenant(pb::PutAgentRequest {
            agent_id: agent.into(),
            profile: Some(pb::AgentProfile {
                name: agent.trim_start_matches("agt_").into(),
                languages: vec!["zh".into(), "en".into()],
                capacity: HashMap::from([("web".to_owned(), capacity)]),
                queues: queues.iter().map(|q| (*q).to_owned()).collect(),
                ..Default::default()
            }),
        }))
        .await
        .expect("put agent");
}

async fn set_presence(routing: &mut RoutingServiceClient<Channel>, agent: &str, presence: &str) {
    routing
        .set_presence(as_tenant(pb::SetPresenceRequest {
            agent_id: agent.into(),
            presence: presence.into(),
        }))
        .await
        .expect("set presence");
}

async fn desk_of(routing: &mut RoutingServiceClient<Channel>, agent: &str) -> Vec<pb::AgentConversation> {
    routing
        .list_agent_conversations(as_tenant(pb::ListAgentConversationsRequest { agent_id: agent.into() }))
        .await
        .expect("agent conversations")
        .into_inner()
        .conversations
}

fn events(records: &[Record]) -> impl Iterator<Item = &Payload> {
    records
        .iter()
        .flat_map(|r| r.commit.events.iter())
        .filter_map(|e| e.payload.as_ref())
}

fn routed<'a>(records: &'a [Record], conversation: &str) -> Vec<&'a pb::MessageRouted> {
    events(records)
        .filter_map(|p| match p {
            Payload::MessageRouted(m) if m.conversation_id == conversation => Some(m),
            _ => None,
        })
        .collect()
}

fn offers<'a>(records: &'a [Record], conversation: &str) -> Vec<&'a pb::ConversationOffered> {
    events(records)
        .filter_map(|p| match p {
            Payload::ConversationOffered(o) if o.conversation_id == conversation => Some(o),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn messages_are_routed_by_rules_handed_off_queued_offered_and_assigned() {
    let cluster = Cluster::start(1.0).await;
    let mut routing = cluster.routing().await;
    let mut conversations = cluster.conversations().await;

    put_queue(
        &mut routing,
        pb::PutQueueRequest {
            queue: "vip".into(),
            ..Default::default()
        },
    )
    .await;
    put_queue(
        &mut routing,
        pb::PutQueueRequest {
            queue: "general".into(),
            offer_timeout_ms: 1_500,
            ..Default::default()
        },
    )
    .await;
    let rules = routing
        .put_rules(as_tenant(pb::PutRulesRequest {
            rules_json: include_str!("../../../crates/yy-rules/examples/rules.json").into(),
        }))
        .await
        .expect("publish rules")
        .into_inner();
    assert_eq!(rules.version, 1);

    // An angry VIP goes to the VIP queue, ahead of everyone, and the decision explains itself.
    let vip = conversation_with(&mut conversations, "vip-customer", &[("tier", "vip")]).await;
    customer_says(&mut conversations, &vip, ANGRY_VIP).await;
    let status = wait_state(&mut routing, &vip, "waiting").await;
    assert_eq!((status.queue.as_str(), status.priority, status.position), ("vip", 9, 1));
    let desk = cluster.desk().await;
    let decision = routed(&desk, &vip)[0];
    assert_eq!(
        (decision.rule_name.as_str(), decision.route.as_str()),
        ("vip-angry", "queue")
    );
    let understanding = decision.understanding.as_ref().expect("understanding");
    assert_eq!(understanding.language, "zh");
    assert!(understanding.sentiment < -0.5, "{understanding:?}");
    assert!(decision.escalate);
    let explanation: serde_json::Value = serde_json::from_str(&decision.explanation_json).expect("explanation");
    assert_eq!(explanation["rule_name"], "vip-angry");
    // The conversation service is told: queued, high priority, tagged.
    let queued = eventually("the VIP conversation to be queued", Duration::from_secs(10), || {
        let mut conversations = conversations.clone();
        let vip = vip.clone();
        async move {
            let c = conversation_status(&mut conversations, &vip).await;
            (c.status == conv::ConversationStatus::Queued as i32 && c.tags.contains(&"angry-vip".to_owned()))
                .then_some(c)
        }
    })
    .await;
    assert_eq!(queued.priority, conv::Priority::Urgent as i32);

    // "Where is my order" stays with the bot.
    let question = conversation_with(&mut conversations, "curious-customer", &[]).await;
    customer_says(&mut conversations, &question, "where is my order?").await;
    let decision = eventually("the question to be routed", Duration::from_secs(10), || async {
        routed(&cluster.desk().await, &question).first().map(|d| (*d).clone())
    })
    .await;
    assert_eq!(decision.route, "bot");
    assert_eq!(
        decision.understanding.as_ref().unwrap().intents[0].name,
        "order_status",
        "{decision:?}"
    );
    assert_eq!(routing_status(&mut routing, &question).await.state, "bot");

    // 转人工 hands off; with nobody online it waits with a position.
    let handoff = conversation_with(&mut conversations, "impatient-customer", &[]).await;
    customer_says(&mut conversations, &handoff, "你好，我的快递一直没到").await;
    customer_says(&mut conversations, &handoff, "转人工").await;
    let status = wait_state(&mut routing, &handoff, "waiting").await;
    assert_eq!((status.queue.as_str(), status.position), ("general", 1));
    let desk = cluster.desk().await;
    let decision = routed(&desk, &handoff).into_iter().last().unwrap();
    assert_eq!(decision.rule_name, "handoff");
    let explanation: serde_json::Value = serde_json::from_str(&decision.explanation_json).unwrap();
    assert_eq!(explanation["skipped"][0]["name"], "vip-angry", "{explanation}");

    // An agent comes online, is offered the conversation with its context, accepts it.
    put_agent(&mut routing, "agt_ann", 2, &["general"]).await;
    put_agent(&mut routing, "agt_bob", 2, &["general"]).await;
    assert_eq!(routing_status(&mut routing, &handoff).await.state, "waiting");
    set_presence(&mut routing, "agt_ann", "online").await;
    let offered = desk_of(&mut routing, "agt_ann").await;
    assert_eq!(offered.len(), 1);
    assert_eq!(
        (offered[0].conversation_id.as_str(), offered[0].state.as_str()),
        (handoff.as_str(), "offered")
    );
    let context = offered[0].handoff.as_ref().expect("handoff context");
    assert_eq!(context.reason, "customer_request");
    let said: Vec<&str> = context.recent_messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(said, ["你好，我的快递一直没到", "转人工"]);
    let accepted = routing
        .accept_offer(as_tenant(pb::OfferRequest {
            agent_id: "agt_ann".into(),
            conversation_id: handoff.clone(),
        }))
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(accepted.state, "assigned");
    let assigned = eventually(
        "the assignment to reach the conversation",
        Duration::from_secs(10),
        || {
            let mut conversations = conversations.clone();
            let handoff = handoff.clone();
            async move {
                let c = conversation_status(&mut conversations, &handoff).await;
                (c.status == conv::ConversationStatus::Assigned as i32).then_some(c)
            }
        },
    )
    .await;
    assert_eq!(assigned.agent_id, "agt_ann");

    // An offer nobody answers in time goes to the next agent.
    set_presence(&mut routing, "agt_bob", "online").await;
    let second = conversation_with(&mut conversations, "second-customer", &[]).await;
    customer_says(&mut conversations, &second, "human please").await;
    let first_offer = wait_state(&mut routing, &second, "offered").await;
    assert_eq!(first_offer.agent_id, "agt_bob", "the least busy agent gets it first");
    let moved = eventually("the offer to move on", Duration::from_secs(10), || {
        let mut routing = routing.clone();
        let second = second.clone();
        async move {
            let s = routing_status(&mut routing, &second).await;
            (s.agent_id == "agt_ann").then_some(s)
        }
    })
    .await;
    assert_eq!(moved.state, "offered");
    let desk = cluster.desk().await;
    assert!(
        events(&desk)
            .any(|p| matches!(p, Payload::OfferExpired(e) if e.conversation_id == second && e.agent_id == "agt_bob"))
    );
    let last = offers(&desk, &second).into_iter().last().unwrap().clone();
    let verdicts: BTreeMap<&str, &str> = last
        .candidates
        .iter()
        .map(|c| (c.agent_id.as_str(), c.verdict.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        BTreeMap::from([("agt_ann", "chosen"), ("agt_bob", "declined_before")])
    );

    // The agent answers, notes, and resolves; the human hands the other one back to the bot.
    let reply = routing
        .reply(as_tenant(pb::ReplyRequest {
            agent_id: "agt_ann".into(),
            conversation_id: handoff.clone(),
            text: "您好，我来帮您查一下快递。".into(),
            ..Default::default()
        }))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!((reply.role.as_str(), reply.author_id.as_str()), ("agent", "agt_ann"));
    let not_assigned = routing
        .reply(as_tenant(pb::ReplyRequest {
            agent_id: "agt_bob".into(),
            conversation_id: handoff.clone(),
            text: "hi".into(),
            ..Default::default()
        }))
        .await
        .expect_err("bob may not reply to ann's conversation");
    assert_eq!(not_assigned.code(), tonic::Code::FailedPrecondition);
    routing
        .add_note(as_tenant(pb::AddNoteRequest {
            agent_id: "agt_ann".into(),
            conversation_id: handoff.clone(),
            text: "customer waited 3 days".into(),
            ..Default::default()
        }))
        .await
        .expect("note");
    let notes = routing
        .list_notes(as_tenant(pb::ListNotesRequest {
            conversation_id: handoff.clone(),
        }))
        .await
        .expect("notes")
        .into_inner()
        .notes;
    assert_eq!(notes.len(), 1);
    let resolved = routing
        .resolve(as_tenant(pb::ResolveRequest {
            agent_id: "agt_ann".into(),
            conversation_id: handoff.clone(),
        }))
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.status, conv::ConversationStatus::Resolved as i32);
    let again = routing
        .resolve(as_tenant(pb::ResolveRequest {
            agent_id: "agt_ann".into(),
            conversation_id: handoff.clone(),
        }))
        .await
        .expect("a retried resolution answers like the first")
        .into_inner();
    assert_eq!(again.status, conv::ConversationStatus::Resolved as i32);
    let unknown = routing
        .accept_offer(as_tenant(pb::OfferRequest {
            agent_id: "agt_nobody".into(),
            conversation_id: second.clone(),
        }))
        .await
        .expect_err("no such agent");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    routing
        .accept_offer(as_tenant(pb::OfferRequest {
            agent_id: "agt_ann".into(),
            conversation_id: second.clone(),
        }))
        .await
        .expect("accept the second");
    let ann = routing
        .get_agent(as_tenant(pb::GetAgentRequest {
            agent_id: "agt_ann".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ann.assigned, std::slice::from_ref(&second));
    let back = routing
        .transfer(as_tenant(pb::TransferRequest {
            agent_id: "agt_ann".into(),
            conversation_id: second.clone(),
            to: Some(pb::transfer_request::To::Bot(true)),
            ..Default::default()
        }))
        .await
        .expect("back to the bot")
        .into_inner();
    assert_eq!(back.state, "bot");
    eventually(
        "the conversation to be back with the bot",
        Duration::from_secs(10),
        || {
            let mut conversations = conversations.clone();
            let second = second.clone();
            async move {
                (conversation_status(&mut conversations, &second).await.status == conv::ConversationStatus::Bot as i32)
                    .then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn rules_and_intents_are_validated_and_a_tenants_own_intents_take_effect() {
    let cluster = Cluster::start(1.0).await;
    let mut routing = cluster.routing().await;
    let refused = routing
        .put_rules(as_tenant(pb::PutRulesRequest {
            rules_json: r#"{"version": 1, "rules": [
                {"name": "angry", "when": {"sentiment": {"below": -3}}, "then": {"route": "queue", "queue": "vip"}},
                {"name": "default", "then": {"route": "bot"}}]}"#
                .into(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("\"angry\"") && refused.message().contains("sentiment.below"),
        "{}",
        refused.message()
    );
    let rules = routing
        .get_rules(as_tenant(pb::GetRulesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rules.version, 0, "the built-in rules stay in force");

    let refused = routing
        .put_intents(as_tenant(pb::PutIntentsRequest {
            intents_json: r#"[{"name": "Warranty!", "examples": ["保修多久"]}]"#.into(),
            extend_default: true,
        }))
        .await
        .expect_err("a bad intent name is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("Warranty!"), "{}", refused.message());

    // A tenant's own intent is understood from then on, beside the built-in ones.
    let intents = routing
        .put_intents(as_tenant(pb::PutIntentsRequest {
            intents_json: r#"[{"name": "warranty", "examples": ["保修多久", "还在保修期内吗", "保修怎么申请",
                "how long is the warranty", "is my phone still under warranty", "warranty claim"]}]"#
                .into(),
            extend_default: true,
        }))
        .await
        .expect("intents")
        .into_inner();
    assert!(intents.names.contains(&"warranty".to_owned()) && intents.names.contains(&"refund".to_owned()));
    let analysis = routing
        .analyze(as_tenant(pb::AnalyzeRequest {
            text: "这个手机的保修期是多久？".into(),
            ..Default::default()
        }))
        .await
        .expect("analyze")
        .into_inner();
    let understanding = analysis.understanding.expect("understanding");
    assert_eq!(understanding.intents[0].name, "warranty", "{understanding:?}");
    assert_eq!(analysis.rule_name, "default");
}

/// What the desk's history says about agents' load and assignments, checked commit by commit.
#[derive(Default)]
struct Audit {
    /// Agent → conversations offered or assigned.
    load: BTreeMap<String, BTreeSet<String>>,
    online: BTreeSet<String>,
    waiting: BTreeSet<String>,
    assigned_count: BTreeMap<String, u32>,
    /// Set after a commit that left a conversation waiting beside free capacity: the next
    /// commit must offer (the dispatcher's own commit follows every command).
    owed_offer: Option<u64>,
}

impl Audit {
    fn check(records: &[Record], capacity: usize) -> Audit {
        let mut audit = Audit::default();
        for record in records {
            let mut offered_now = false;
            for payload in record.commit.events.iter().filter_map(|e| e.payload.as_ref()) {
                match payload {
                    Payload::AgentPresenceChanged(e) => {
                        if e.presence == "online" {
                            audit.online.insert(e.agent_id.clone());
                        } else {
                            audit.online.remove(&e.agent_id);
                        }
                    }
                    Payload::ConversationQueued(e) => {
                        audit.waiting.insert(e.conversation_id.clone());
                    }
                    Payload::ConversationOffered(e) => {
                        offered_now = true;
                        assert!(
                            audit.waiting.remove(&e.conversation_id),
                            "{} offered while not waiting",
                            e.conversation_id
                        );
                        let load = audit.load.entry(e.agent_id.clone()).or_default();
                        load.insert(e.conversation_id.clone());
                        assert!(
                            load.len() <= capacity,
                            "{} above capacity at sequence {}",
                            e.agent_id,
                            record.sequence
                        );
                    }
                    Payload::OfferRejected(pb::OfferRejected {
                        conversation_id,
                        agent_id,
                        ..
                    })
                    | Payload::OfferExpired(pb::OfferExpired {
                        conversation_id,
                        agent_id,
                        ..
                    })
                    | Payload::OfferWithdrawn(pb::OfferWithdrawn {
                        conversation_id,
                        agent_id,
                        ..
                    }) => {
                        audit.load.entry(agent_id.clone()).or_default().remove(conversation_id);
                        audit.waiting.insert(conversation_id.clone());
                    }
                    Payload::ConversationAssigned(e) => {
                        assert!(
                            audit.load[&e.agent_id].contains(&e.conversation_id),
                            "assigned without an offer"
                        );
                        *audit.assigned_count.entry(e.conversation_id.clone()).or_default() += 1;
                    }
                    Payload::ConversationReleased(pb::ConversationReleased {
                        conversation_id,
                        agent_id,
                        ..
                    })
                    | Payload::ConversationDequeued(pb::ConversationDequeued {
                        conversation_id,
                        agent_id,
                        ..
                    }) => {
                        audit.load.entry(agent_id.clone()).or_default().remove(conversation_id);
                        audit.waiting.remove(conversation_id);
                    }
                    _ => {}
                }
            }
            if let Some(sequence) = audit.owed_offer.take() {
                let kinds: Vec<String> = record
                    .commit
                    .events
                    .iter()
                    .filter_map(|e| e.payload.as_ref())
                    .map(|p| format!("{p:?}").chars().take(80).collect())
                    .collect();
                assert!(
                    offered_now,
                    "a conversation waited beside free capacity after sequence {sequence}; next: {kinds:?}; waiting {:?}; load {:?}",
                    audit.waiting, audit.load
                );
            }
            let free = audit
                .online
                .iter()
                .any(|a| audit.load.get(a).map_or(0, BTreeSet::len) < capacity);
            if free && !audit.waiting.is_empty() {
                audit.owed_offer = Some(record.sequence);
            }
        }
        audit
    }
}

#[tokio::test]
async fn a_burst_of_conversations_never_overbooks_agents_even_when_routing_is_killed_midway() {
    const CONVERSATIONS: usize = 100;
    const AGENTS: usize = 5;
    const CAPACITY: u32 = 3;
    let mut cluster = Cluster::start(1.0).await;
    let mut routing = cluster.routing().await;
    put_queue(
        &mut routing,
        pb::PutQueueRequest {
            queue: "general".into(),
            // Long enough that no offer expires while the service restarts.
            offer_timeout_ms: 120_000,
            ..Default::default()
        },
    )
    .await;
    let agents: Vec<String> = (0..AGENTS).map(|i| format!("agt_{i}")).collect();
    for agent in &agents {
        put_agent(&mut routing, agent, CAPACITY, &[]).await;
        set_presence(&mut routing, agent, "online").await;
    }

    // Agents accept every offer and resolve each conversation a little later.
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for agent in agents.clone() {
        let addr = cluster.routing_addr.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut resolved = 0usize;
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let Ok(mut routing) = routing_client(&addr).await else {
                    continue;
                };
                let Ok(desk) = routing
                    .list_agent_conversations(as_tenant(pb::ListAgentConversationsRequest {
                        agent_id: agent.clone(),
                    }))
                    .await
                else {
                    continue;
                };
                for c in desk.into_inner().conversations {
                    let request = pb::OfferRequest {
                        agent_id: agent.clone(),
                        conversation_id: c.conversation_id.clone(),
                    };
                    if c.state == "offered" {
                        let _ = routing.accept_offer(as_tenant(request)).await;
                    } else {
                        let resolve = pb::ResolveRequest {
                            agent_id: agent.clone(),
                            conversation_id: c.conversation_id.clone(),
                        };
                        if routing.resolve(as_tenant(resolve)).await.is_ok() {
                            resolved += 1;
                        }
                    }
                }
            }
            resolved
        }));
    }

    let mut opened = tokio::task::JoinSet::new();
    for i in 0..CONVERSATIONS {
        let mut conversations = cluster.conversations().await;
        opened.spawn(async move {
            let id = conversation_with(&mut conversations, &format!("burst-{i}"), &[]).await;
            customer_says(&mut conversations, &id, "转人工").await;
            id
        });
    }
    let ids: Vec<String> = opened.join_all().await;

    // Kill routing once a good part of the burst is assigned, then let the new process finish.
    eventually(
        "a third of the burst to be assigned",
        Duration::from_secs(60),
        || async {
            let assigned = events(&cluster.desk().await)
                .filter(|p| matches!(p, Payload::ConversationAssigned(_)))
                .count();
            (assigned >= CONVERSATIONS / 3).then_some(())
        },
    )
    .await;
    cluster.crash_and_restart_routing().await;

    let desk = eventually(
        "every conversation to be assigned and resolved",
        Duration::from_secs(120),
        || async {
            let desk = cluster.desk().await;
            let released = events(&desk)
                .filter(|p| matches!(p, Payload::ConversationReleased(_)))
                .count();
            (released >= CONVERSATIONS).then_some(desk)
        },
    )
    .await;
    stop.cancel();
    for worker in workers {
        worker.await.expect("worker");
    }

    let audit = Audit::check(&desk, CAPACITY as usize);
    for id in &ids {
        assert_eq!(
            audit.assigned_count.get(id),
            Some(&1),
            "{id} must be assigned exactly once"
        );
    }
    assert!(
        audit.waiting.is_empty(),
        "nothing left in the queue: {:?}",
        audit.waiting
    );
    // Every decision was recorded once, across the crash.
    let routed: BTreeMap<&str, usize> = events(&desk).fold(BTreeMap::new(), |mut m, p| {
        if let Payload::MessageRouted(r) = p {
            *m.entry(r.conversation_id.as_str()).or_default() += 1;
        }
        m
    });
    assert!(
        routed.values().all(|&n| n == 1),
        "a message was routed twice: {routed:?}"
    );
    assert_eq!(routed.len(), CONVERSATIONS);
}

#[tokio::test]
async fn a_waiting_conversation_escalates_on_scaled_time_across_a_restart() {
    // One real second is a minute of queue time.
    let mut cluster = Cluster::start(60.0).await;
    let mut routing = cluster.routing().await;
    let mut conversations = cluster.conversations().await;
    put_queue(
        &mut routing,
        pb::PutQueueRequest {
            queue: "backup".into(),
            first_response_secs: 60,
            ..Default::default()
        },
    )
    .await;
    use pb::escalation_step::Action;
    put_queue(
        &mut routing,
        pb::PutQueueRequest {
            queue: "general".into(),
            max_wait_secs: 300,
            escalation: vec![
                pb::EscalationStep {
                    after_secs: 60,
                    action: Some(Action::RaisePriorityTo(8)),
                },
                pb::EscalationStep {
                    after_secs: 180,
                    action: Some(Action::HoldMessage("我们的客服正忙，请稍候。".into())),
                },
                pb::EscalationStep {
                    after_secs: 300,
                    action: Some(Action::OverflowToQueue("backup".into())),
                },
            ],
            ..Default::default()
        },
    )
    .await;
    let waiting = conversation_with(&mut conversations, "waiting-customer", &[]).await;
    customer_says(&mut conversations, &waiting, "转人工").await;
    let status = wait_state(&mut routing, &waiting, "waiting").await;
    assert_eq!((status.queue.as_str(), status.priority), ("general", 5));

    // A minute of queue time later its priority is raised.
    let raised = eventually("the priority to be raised", Duration::from_secs(10), || {
        let mut routing = routing.clone();
        let waiting = waiting.clone();
        async move {
            let s = routing_status(&mut routing, &waiting).await;
            (s.priority == 8).then_some(s)
        }
    })
    .await;
    assert_eq!(raised.queue, "general");
    eventually("the conversation's priority to follow", Duration::from_secs(10), || {
        let mut conversations = conversations.clone();
        let waiting = waiting.clone();
        async move {
            (conversation_status(&mut conversations, &waiting).await.priority == conv::Priority::High as i32)
                .then_some(())
        }
    })
    .await;

    // Routing dies before the next threshold; its successor keeps the schedule.
    cluster.crash_and_restart_routing().await;
    let routing = cluster.routing().await;
    eventually("the hold message", Duration::from_secs(15), || {
        let mut conversations = conversations.clone();
        let waiting = waiting.clone();
        async move {
            let messages = conversations
                .list_messages(as_tenant(conv::ListMessagesRequest {
                    conversation_id: waiting,
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner()
                .messages;
            messages
                .iter()
                .any(|m| m.role == "system" && m.text == "我们的客服正忙，请稍候。")
                .then_some(())
        }
    })
    .await;
    let overflowed = eventually("the overflow", Duration::from_secs(15), || {
        let mut routing = routing.clone();
        let waiting = waiting.clone();
        async move {
            let s = routing_status(&mut routing, &waiting).await;
            (s.queue == "backup").then_some(s)
        }
    })
    .await;
    assert_eq!((overflowed.state.as_str(), overflowed.priority), ("waiting", 8));

    let desk = cluster.desk().await;
    let steps: Vec<u32> = events(&desk)
        .filter_map(|p| match p {
            Payload::SlaEscalated(e) if e.conversation_id == waiting => Some(e.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [0, 1, 2], "each step once, in order, across the restart");
    let messages = conversations
        .list_messages(as_tenant(conv::ListMessagesRequest {
            conversation_id: waiting.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(
        messages.iter().filter(|m| m.role == "system").count(),
        1,
        "the hold message is posted once"
    );

    // Assigned from the backup queue, whose agents should answer within a minute of queue time:
    // the minute passes unanswered, then the late answer is measured against it.
    let mut routing = routing;
    put_agent(&mut routing, "agt_late", 1, &["backup"]).await;
    set_presence(&mut routing, "agt_late", "online").await;
    wait_state(&mut routing, &waiting, "offered").await;
    routing
        .accept_offer(as_tenant(pb::OfferRequest {
            agent_id: "agt_late".into(),
            conversation_id: waiting.clone(),
        }))
        .await
        .expect("accept");
    let overdue = eventually("the first response to be overdue", Duration::from_secs(10), || async {
        events(&cluster.desk().await).find_map(|p| match p {
            Payload::FirstResponseOverdue(e) if e.conversation_id == waiting => Some(e.clone()),
            _ => None,
        })
    })
    .await;
    assert_eq!((overdue.agent_id.as_str(), overdue.target_secs), ("agt_late", 60));
    routing
        .reply(as_tenant(pb::ReplyRequest {
            agent_id: "agt_late".into(),
            conversation_id: waiting.clone(),
            text: "抱歉久等了".into(),
            ..Default::default()
        }))
        .await
        .expect("reply");
    let answered = eventually("the first response", Duration::from_secs(10), || async {
        events(&cluster.desk().await).find_map(|p| match p {
            Payload::FirstResponded(e) if e.conversation_id == waiting => Some(e.clone()),
            _ => None,
        })
    })
    .await;
    assert!(!answered.within_target && answered.response_ms >= 1000, "{answered:?}");
}
