//! The routing log as state: per tenant, a desk with its rules, intents, agents, queues and the
//! conversations routing has seen. Rebuilt from `YY_ROUTING`, which only this service writes;
//! every decision is taken against it and recorded before it counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use prost::Message as _;
use serde::{Deserialize, Serialize};
use yy_dispatch::Dispatcher;
use yy_eventlog::{Payload, Projection, Record, Snapshottable};
use yy_nlu::{Analyzer, EntityExtractor, IntentModel};
use yy_proto::routing::v1 as pb;
use yy_rules::RuleSet;

use crate::events;

/// The rules a tenant has until it publishes its own: a customer who asks for a human, is very
/// unhappy, or is not understood twice in a row gets one; everything else stays with the bot.
pub const DEFAULT_RULES: &str = include_str!("default_rules.json");

/// The aggregate id of a tenant's desk. One per tenant, so partitions spread tenants.
pub fn desk_id(tenant: &str) -> String {
    format!("desk_{tenant}")
}

/// The built-in rules, compiled once.
pub fn default_rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    RULES
        .get_or_init(|| Arc::new(RuleSet::parse(DEFAULT_RULES).expect("the built-in rules are valid")))
        .clone()
}

/// The built-in bilingual intents, trained once.
pub fn default_analyzer() -> Arc<Analyzer> {
    static ANALYZER: OnceLock<Arc<Analyzer>> = OnceLock::new();
    ANALYZER.get_or_init(|| Arc::new(Analyzer::default_bilingual())).clone()
}

/// An analyzer for a tenant's own intents.
///
/// `intents_json` is the API's array of `{"name", "examples"}`; the language-understanding crate
/// reads the same list under an `intents` key, with its own validation and messages.
pub fn tenant_analyzer(intents_json: &str, extend_default: bool) -> Result<Analyzer, String> {
    let list: serde_json::Value = serde_json::from_str(intents_json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(entries) = list.as_array() else {
        return Err("must be an array of {\"name\", \"examples\"} objects".into());
    };
    // Rules name intents in conditions; one spelling of names keeps them easy to match.
    for (i, entry) in entries.iter().enumerate() {
        let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(format!(
                "[{i}].name {name:?}: must be 1 to 64 characters of a-z, 0-9 and '_'"
            ));
        }
    }
    let file = serde_json::json!({ "intents": list }).to_string();
    let own = yy_nlu::intents_from_json(&file).map_err(|e| e.to_string())?;
    let defs = if extend_default {
        let mut all = yy_nlu::default_intents();
        yy_nlu::extend_intents(&mut all, own);
        all
    } else {
        own
    };
    let model = IntentModel::train(&defs).map_err(|e| e.to_string())?;
    Ok(Analyzer::new(model, EntityExtractor::default()))
}

/// Every tenant's desk.
#[derive(Debug, Clone, Default)]
pub struct Desks {
    tenants: HashMap<String, Desk>,
}

impl Desks {
    /// A tenant's desk, if it has one.
    pub fn tenant(&self, tenant: &str) -> Option<&Desk> {
        self.tenants.get(tenant)
    }

    /// Every tenant with a desk.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Desk)> {
        self.tenants.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A published rule set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedRules {
    pub version: u64,
    pub json: String,
    pub at_ms: i64,
    #[serde(skip)]
    compiled: Option<Arc<RuleSet>>,
}

/// A tenant's own intents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantIntents {
    pub json: String,
    pub extend_default: bool,
    #[serde(skip)]
    analyzer: Option<Arc<Analyzer>>,
}

/// What happens to a conversation that waited long enough in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub after_secs: u32,
    pub action: EscalationAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationAction {
    RaisePriorityTo(u8),
    OverflowTo(String),
    HoldMessage(String),
}

impl Escalation {
    pub fn from_proto(step: &pb::EscalationStep) -> Option<Self> {
        use pb::escalation_step::Action;
        let action = match step.action.as_ref()? {
            Action::RaisePriorityTo(p) => EscalationAction::RaisePriorityTo(u8::try_from(*p).ok()?),
            Action::OverflowToQueue(q) => EscalationAction::OverflowTo(q.clone()),
            Action::HoldMessage(text) => EscalationAction::HoldMessage(text.clone()),
        };
        Some(Escalation {
            after_secs: step.after_secs,
            action,
        })
    }

    pub fn to_proto(&self) -> pb::EscalationStep {
        use pb::escalation_step::Action;
        pb::EscalationStep {
            after_secs: self.after_secs,
            action: Some(match &self.action {
                EscalationAction::RaisePriorityTo(p) => Action::RaisePriorityTo(u32::from(*p)),
                EscalationAction::OverflowTo(q) => Action::OverflowToQueue(q.clone()),
                EscalationAction::HoldMessage(text) => Action::HoldMessage(text.clone()),
            }),
        }
    }
}

/// What routing remembers of one conversation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConversationRouting {
    /// Messages at or before this position were routed; a redelivered one is not routed again.
    pub routed_position: u64,
    /// Customer messages in a row that were not understood.
    pub low_confidence_streak: u32,
    /// The context of its latest handoff (an encoded `ConversationQueued`).
    pub handoff: Option<Vec<u8>>,
    /// Escalation steps of its current queue already taken in its current wait.
    pub escalated: BTreeSet<u32>,
    /// Hold messages owed to the customer in its current wait: (command id, text). Posting is
    /// idempotent on the command id, so they are posted again after a restart.
    pub hold_messages: Vec<(String, String)>,
    /// Tags its routing decisions added: (command id, tags), posted idempotently like the above.
    pub tags: Vec<(String, Vec<String>)>,
    /// Why it last left the dispatcher ("to_bot", "resolved", "closed"); empty while in it.
    pub left: String,
    /// Its internal notes, oldest first.
    pub notes: Vec<Note>,
    /// Whether the agent of its current assignment has answered yet.
    #[serde(default)]
    pub responded: bool,
    /// Whether its current assignment passed the first-response target unanswered.
    #[serde(default)]
    pub response_overdue: bool,
}

impl ConversationRouting {
    /// The handoff context, decoded.
    pub fn handoff(&self) -> Option<pb::ConversationQueued> {
        self.handoff
            .as_deref()
            .and_then(|bytes| pb::ConversationQueued::decode(bytes).ok())
    }
}

/// An internal note.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub id: String,
    pub agent_id: String,
    pub text: String,
    pub at_ms: i64,
}

/// One tenant's desk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    /// The stream sequence of the desk's last commit: the expected sequence of the next append.
    pub sequence: u64,
    pub rules: Option<PublishedRules>,
    pub intents: Option<TenantIntents>,
    pub dispatcher: Dispatcher,
    /// Agent → display name.
    pub names: BTreeMap<String, String>,
    /// Queue → escalation steps, by `after_secs`.
    pub escalations: BTreeMap<String, Vec<Escalation>>,
    pub conversations: HashMap<String, ConversationRouting>,
}

impl Desk {
    /// The rules in force and whether they are the tenant's own.
    pub fn rules(&self) -> (Arc<RuleSet>, u64) {
        match &self.rules {
            Some(PublishedRules {
                compiled: Some(rules),
                version,
                ..
            }) => (rules.clone(), *version),
            _ => (default_rules(), 0),
        }
    }

    /// The analyzer for the tenant's intents.
    pub fn analyzer(&self) -> Arc<Analyzer> {
        self.intents
            .as_ref()
            .and_then(|i| i.analyzer.clone())
            .unwrap_or_else(default_analyzer)
    }

    /// What routing remembers of a conversation.
    pub fn conversation(&self, id: &str) -> Option<&ConversationRouting> {
        self.conversations.get(id)
    }

    fn rebuild(&mut self) {
        if let Some(rules) = &mut self.rules {
            rules.compiled = RuleSet::parse(&rules.json).ok().map(Arc::new);
        }
        if let Some(intents) = &mut self.intents {
            intents.analyzer = tenant_analyzer(&intents.json, intents.extend_default)
                .ok()
                .map(Arc::new);
        }
    }

    fn apply(&mut self, payload: &Payload, at_ms: i64) {
        if let Some(event) = events::from_payload(payload) {
            self.dispatcher.apply(&event);
        }
        match payload {
            Payload::RulesPublished(e) => {
                let mut rules = PublishedRules {
                    version: e.version,
                    json: e.rules_json.clone(),
                    at_ms,
                    compiled: None,
                };
                rules.compiled = RuleSet::parse(&rules.json).ok().map(Arc::new);
                self.rules = Some(rules);
            }
            Payload::IntentsConfigured(e) => {
                self.intents = Some(TenantIntents {
                    json: e.intents_json.clone(),
                    extend_default: e.extend_default,
                    analyzer: tenant_analyzer(&e.intents_json, e.extend_default).ok().map(Arc::new),
                });
            }
            Payload::MessageRouted(e) => {
                let conversation = self.conversations.entry(e.conversation_id.clone()).or_default();
                conversation.routed_position = conversation.routed_position.max(e.message_position);
                conversation.low_confidence_streak = e.low_confidence_streak;
                if !e.add_tags.is_empty() {
                    conversation
                        .tags
                        .push((format!("route-{}", e.message_id), e.add_tags.clone()));
                }
            }
            Payload::AgentRegistered(pb::AgentRegistered { agent_id, profile })
            | Payload::AgentUpdated(pb::AgentUpdated { agent_id, profile }) => {
                let name = profile.as_ref().map(|p| p.name.clone()).unwrap_or_default();
                self.names.insert(agent_id.clone(), name);
            }
            Payload::QueueConfigured(e) => {
                let mut steps: Vec<Escalation> = e.escalation.iter().filter_map(Escalation::from_proto).collect();
                steps.sort_by_key(|s| s.after_secs);
                self.escalations.insert(e.queue.clone(), steps);
            }
            Payload::ConversationQueued(e) => {
                let conversation = self.conversations.entry(e.conversation_id.clone()).or_default();
                conversation.handoff = Some(e.encode_to_vec());
                conversation.escalated.clear();
                conversation.hold_messages.clear();
                conversation.left.clear();
            }
            Payload::ConversationTransferred(e) if !e.to_queue.is_empty() => {
                if let Some(conversation) = self.conversations.get_mut(&e.conversation_id) {
                    conversation.escalated.clear();
                }
            }
            Payload::SlaEscalated(e) => {
                let conversation = self.conversations.entry(e.conversation_id.clone()).or_default();
                conversation.escalated.insert(e.step);
                if let Some(pb::escalation_step::Action::HoldMessage(text)) =
                    e.action.as_ref().and_then(|a| a.action.as_ref())
                {
                    conversation.hold_messages.push((
                        format!("hold-{}-{}-{}", e.conversation_id, e.step, e.at_ms),
                        text.clone(),
                    ));
                }
            }
            Payload::ConversationDequeued(e) => {
                let conversation = self.conversations.entry(e.conversation_id.clone()).or_default();
                conversation.left = e.reason.clone();
                conversation.escalated.clear();
                conversation.hold_messages.clear();
            }
            Payload::ConversationAssigned(e) => {
                let conversation = self.conversations.entry(e.conversation_id.clone()).or_default();
                conversation.responded = false;
                conversation.response_overdue = false;
            }
            Payload::FirstResponded(e) => {
                self.conversations
                    .entry(e.conversation_id.clone())
                    .or_default()
                    .responded = true;
            }
            Payload::FirstResponseOverdue(e) => {
                self.conversations
                    .entry(e.conversation_id.clone())
                    .or_default()
                    .response_overdue = true;
            }
            Payload::NoteAdded(e) => {
                self.conversations
                    .entry(e.conversation_id.clone())
                    .or_default()
                    .notes
                    .push(Note {
                        id: e.note_id.clone(),
                        agent_id: e.agent_id.clone(),
                        text: e.text.clone(),
                        at_ms: e.at_ms,
                    });
            }
            _ => {}
        }
    }
}

fn millis(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

impl Projection for Desks {
    fn apply(&mut self, record: &Record) {
        let desk = self.tenants.entry(record.tenant_id.clone()).or_default();
        desk.sequence = record.sequence;
        for event in &record.commit.events {
            if let Some(payload) = &event.payload {
                desk.apply(payload, millis(event.occurred_at.as_ref()));
            }
        }
    }
}

impl Snapshottable for Desks {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.tenants).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut tenants: HashMap<String, Desk> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for desk in tenants.values_mut() {
            desk.rebuild();
        }
        Ok(Desks { tenants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yy_eventlog::{Commit, EventEnvelope};

    fn record(sequence: u64, payloads: Vec<Payload>) -> Record {
        Record {
            partition: 0,
            sequence,
            tenant_id: "ten_a".into(),
            aggregate_id: desk_id("ten_a"),
            commit: Commit {
                command_id: format!("c{sequence}"),
                events: payloads
                    .into_iter()
                    .map(|payload| EventEnvelope {
                        payload: Some(payload),
                        ..Default::default()
                    })
                    .collect(),
            },
            trace: None,
        }
    }

    #[test]
    fn the_built_in_rules_are_valid_and_hand_off_to_the_general_queue() {
        let rules = default_rules();
        assert!(rules.queues().contains(&"general"));
    }

    /// A snapshot read back decides like the desk it was taken of: same dispatcher, same rules and
    /// intents in force (rebuilt, since compiled forms are not stored), same memory of
    /// conversations.
    #[test]
    fn a_snapshot_restores_the_desk_with_its_rules_and_intents_compiled() {
        let mut desks = Desks::default();
        let rules = DEFAULT_RULES.replace("\"version\": 1", "\"version\": 3");
        let intents = r#"[{"name": "warranty", "examples": ["保修多久", "还在保修期吗", "how long is the warranty"]}]"#;
        desks.apply(&record(
            1,
            vec![
                Payload::RulesPublished(pb::RulesPublished {
                    version: 3,
                    rules_json: rules,
                }),
                Payload::IntentsConfigured(pb::IntentsConfigured {
                    intents_json: intents.into(),
                    extend_default: true,
                }),
                Payload::QueueConfigured(pb::QueueConfigured {
                    queue: "general".into(),
                    strategy: "least_busy".into(),
                    offer_timeout_ms: 1000,
                    escalation: vec![pb::EscalationStep {
                        after_secs: 60,
                        action: Some(pb::escalation_step::Action::RaisePriorityTo(8)),
                    }],
                    ..Default::default()
                }),
                Payload::ConversationQueued(pb::ConversationQueued {
                    conversation_id: "conv_1".into(),
                    queue: "general".into(),
                    priority: 5,
                    channel: "web".into(),
                    at_ms: 10,
                    reason: "customer_request".into(),
                    ..Default::default()
                }),
                Payload::NoteAdded(pb::NoteAdded {
                    conversation_id: "conv_1".into(),
                    note_id: "note_1".into(),
                    agent_id: "agt_a".into(),
                    text: "vip".into(),
                    at_ms: 11,
                }),
            ],
        ));
        let restored = Desks::decode(&desks.encode()).expect("decode");
        let (before, after) = (desks.tenant("ten_a").unwrap(), restored.tenant("ten_a").unwrap());
        assert_eq!(after.sequence, 1);
        assert_eq!(after.dispatcher, before.dispatcher);
        assert_eq!(after.rules().1, 3);
        assert_eq!(after.escalations, before.escalations);
        assert!(after.analyzer().intent_model().intents().any(|i| i == "warranty"));
        assert!(
            after.analyzer().intent_model().intents().any(|i| i == "refund"),
            "extends the default set"
        );
        let conversation = after.conversation("conv_1").unwrap();
        assert_eq!(conversation.handoff().unwrap().reason, "customer_request");
        assert_eq!(conversation.notes.len(), 1);
    }
}
