//! The JSON shapes of the routing part of the REST API (rules, intents, agents, queues, the agent
//! workspace, queue positions) and their translation to and from the routing API.
//!
//! What the routing API carries as JSON text (rule sets, intents, decisions) is a JSON value
//! here, never a string holding JSON. Times are RFC 3339, like the rest of the API; durations
//! keep their unit in the name (`offer_timeout_ms`, `max_wait_secs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use yy_proto::routing::v1 as pb;

use crate::problem::{Problem, ProblemKind};
use crate::rest::model::{Role, non_empty, timestamp_ms};

/// The JSON that `text` holds, or `default` when it is empty. The routing service writes this
/// text itself, so what does not parse is a fault there; it is logged, and `text` is returned
/// as a string rather than failing the whole answer.
fn json_text(text: &str, default: Value) -> Value {
    if text.is_empty() {
        return default;
    }
    serde_json::from_str(text).unwrap_or_else(|error| {
        tracing::error!(%error, "the routing service sent JSON text that does not parse");
        Value::String(text.to_owned())
    })
}

/// A time in milliseconds since the epoch, where 0 means none.
fn time_ms(ms: i64) -> Option<String> {
    (ms != 0).then(|| timestamp_ms(ms))
}

fn invalid(detail: String) -> Problem {
    Problem::new(ProblemKind::ValidationFailed, detail)
}

// ---- Rules and intents ----

/// The routing rules in force.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "version": 2,
    "rules": {
        "version": 2,
        "rules": [
            {"name": "vip-angry", "when": {"contact_attributes": {"tier": {"one_of": ["vip"]}}, "sentiment": {"below": -0.5}},
             "then": {"route": "queue", "queue": "vip", "priority": 9, "skills": [{"name": "complaints", "min_level": 3}]}},
            {"name": "handoff", "when": {"handoff_requested": true}, "then": {"route": "queue", "queue": "general", "priority": 5}},
            {"name": "default", "then": {"route": "bot"}}
        ]
    },
    "published_at": "2025-05-20T08:30:00.123Z"
}))]
pub struct RuleSet {
    /// The version; 0 for the built-in default rules.
    pub version: u64,
    /// The rule set as published: the object `PUT /v1/routing/rules` takes.
    #[schema(value_type = Object)]
    pub rules: Value,
    /// When it was published (RFC 3339); absent for the built-in rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub published_at: Option<String>,
}

impl From<pb::RuleSet> for RuleSet {
    fn from(rules: pb::RuleSet) -> Self {
        RuleSet {
            version: rules.version,
            rules: json_text(&rules.rules_json, json!({})),
            published_at: time_ms(rules.published_at_ms),
        }
    }
}

/// A rule set to publish: rules tried in order, the first that matches deciding who answers.
/// The gateway passes it on as written; the routing service checks all of it and reports every
/// mistake at once, naming the rule and the field.
#[derive(Debug, Clone, ToSchema)]
#[schema(example = json!({
    "version": 2,
    "rules": [
        {"name": "vip-angry", "description": "Unhappy VIPs go to the VIP desk first.",
         "when": {"contact_attributes": {"tier": {"one_of": ["vip"]}}, "sentiment": {"below": -0.5}},
         "then": {"route": "queue", "queue": "vip", "priority": 9, "skills": [{"name": "complaints", "min_level": 3}]}},
        {"name": "refunds", "when": {"intent": {"one_of": ["refund"], "min_confidence": 0.6}},
         "then": {"route": "queue", "queue": "billing", "priority": 6, "add_tags": ["refund"]}},
        {"name": "handoff", "when": {"handoff_requested": true}, "then": {"route": "queue", "queue": "general", "priority": 5}},
        {"name": "default", "then": {"route": "bot"}}
    ]
}))]
// Only describes the body for the OpenAPI document: the body is passed on as text.
#[allow(dead_code)]
pub struct RuleSetBody {
    /// Greater than the version in force.
    pub version: u64,
    /// The rules: each with a unique `name`, optional `description`, conditions `when` (all
    /// must hold; absent: always) and an action `then` (`{"route": "bot"}` or
    /// `{"route": "queue", "queue": …, "priority": 1–10, "skills": […], "languages": […]}`,
    /// with optional `add_tags` and `escalate`). The last rule must have no conditions.
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Value>,
}

/// One intent: a name and example utterances in any language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "warranty", "examples": ["保修多久", "how long is the warranty", "还在保修期吗"]}))]
pub struct IntentDefinition {
    /// The intent's name, as rules name it (`intent.one_of`).
    pub name: String,
    /// At least 3 example messages.
    pub examples: Vec<String>,
}

/// The tenant's own intents.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "intents": [{"name": "warranty", "examples": ["保修多久", "how long is the warranty", "还在保修期吗"]}],
    "extend_default": true
}))]
pub struct PutIntents {
    /// The intents.
    pub intents: Vec<IntentDefinition>,
    /// `true`: add them to the built-in bilingual set (replacing a built-in intent of the same
    /// name); `false`: they replace the built-in set.
    pub extend_default: bool,
}

impl PutIntents {
    pub(crate) fn into_proto(self) -> pb::PutIntentsRequest {
        pb::PutIntentsRequest {
            intents_json: serde_json::to_string(&self.intents).unwrap_or_default(),
            extend_default: self.extend_default,
        }
    }
}

/// The intents messages are classified with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "names": ["account_login", "complaint", "greeting", "human_handoff", "order_status", "payment", "refund", "shipping", "thanks", "warranty"],
    "intents": [{"name": "warranty", "examples": ["保修多久", "how long is the warranty", "还在保修期吗"]}],
    "extend_default": true
}))]
pub struct IntentSet {
    /// Every intent in force, sorted.
    pub names: Vec<String>,
    /// The tenant's own definitions as given; empty when it uses the built-in set.
    #[schema(value_type = Vec<IntentDefinition>)]
    pub intents: Value,
    /// Whether the tenant's intents extend the built-in set.
    pub extend_default: bool,
}

impl From<pb::IntentSet> for IntentSet {
    fn from(set: pb::IntentSet) -> Self {
        IntentSet {
            names: set.names,
            intents: json_text(&set.intents_json, json!([])),
            extend_default: set.extend_default,
        }
    }
}

/// A message to try the rules and intents on.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "我的订单A-1024还没到，太慢了，转人工", "channel": "app", "contact_attributes": {"tier": "vip"}}))]
pub struct Analyze {
    /// The customer's message.
    pub text: String,
    /// The channel to assume; `web` when not given.
    #[serde(default)]
    pub channel: Option<String>,
    /// The contact's attributes to assume.
    #[serde(default)]
    pub contact_attributes: Option<BTreeMap<String, String>>,
}

impl Analyze {
    pub(crate) fn into_proto(self) -> pb::AnalyzeRequest {
        pb::AnalyzeRequest {
            text: self.text,
            channel: self.channel.unwrap_or_default(),
            contact_attributes: self.contact_attributes.unwrap_or_default().into_iter().collect(),
        }
    }
}

/// An intent and the classifier's confidence in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IntentScore {
    /// The intent.
    #[schema(example = "order_status")]
    pub name: String,
    /// 0 to 1.
    #[schema(example = 0.82)]
    pub confidence: f32,
}

/// What the language understanding made of a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "language": "zh",
    "intents": [{"name": "human_handoff", "confidence": 0.91}, {"name": "order_status", "confidence": 0.06}],
    "fallback": false,
    "ambiguous": false,
    "sentiment": -0.45,
    "sentiment_label": "negative",
    "entities": ["order_number:A-1024"]
}))]
pub struct Understanding {
    /// `zh`, `en`, `mixed` or `unknown`.
    pub language: String,
    /// The top intents, best first.
    pub intents: Vec<IntentScore>,
    /// No intent was confident enough.
    pub fallback: bool,
    /// The two best intents were too close to tell apart.
    pub ambiguous: bool,
    /// From -1 (most negative) to 1 (most positive).
    pub sentiment: f32,
    /// `negative`, `neutral` or `positive`.
    pub sentiment_label: String,
    /// Order numbers, phone numbers and emails found, as `kind:value`.
    pub entities: Vec<String>,
}

impl From<pb::Understanding> for Understanding {
    fn from(understanding: pb::Understanding) -> Self {
        Understanding {
            language: understanding.language,
            intents: understanding
                .intents
                .into_iter()
                .map(|i| IntentScore {
                    name: i.name,
                    confidence: i.confidence,
                })
                .collect(),
            fallback: understanding.fallback,
            ambiguous: understanding.ambiguous,
            sentiment: understanding.sentiment,
            sentiment_label: understanding.sentiment_label,
            entities: understanding.entities,
        }
    }
}

/// What the rules in force would do with a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "understanding": {
        "language": "zh",
        "intents": [{"name": "human_handoff", "confidence": 0.98}, {"name": "shipping", "confidence": 0.01}],
        "fallback": false,
        "ambiguous": false,
        "sentiment": -0.45,
        "sentiment_label": "negative",
        "entities": ["order_number:A-1024"]
    },
    "rule_name": "handoff",
    "decision": {
        "version": 2,
        "rule_index": 1,
        "rule_name": "handoff",
        "action": {"route": "queue", "queue": "general", "priority": 5, "skills": [], "languages": [], "add_tags": [], "escalate": false},
        "skipped": [
            {"index": 0, "name": "vip-angry", "failed": {"condition": "sentiment", "below": -0.5, "above": null, "actual": -0.45}}
        ]
    }
}))]
pub struct Analysis {
    /// What the message says.
    pub understanding: Understanding,
    /// The rule that would decide.
    pub rule_name: String,
    /// The decision and why: the action, and each earlier rule with the first condition that
    /// failed, its expected and actual values.
    #[schema(value_type = Object)]
    pub decision: Value,
}

impl From<pb::AnalyzeResponse> for Analysis {
    fn from(analysis: pb::AnalyzeResponse) -> Self {
        Analysis {
            understanding: analysis.understanding.unwrap_or_default().into(),
            rule_name: analysis.rule_name,
            decision: json_text(&analysis.decision_json, json!({})),
        }
    }
}

// ---- Agents ----

/// Whether an agent takes conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Takes conversations: waiting ones are offered.
    Online,
    /// Keeps assigned conversations but gets no offers.
    Away,
    /// Gets no offers.
    Offline,
}

impl Presence {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }

    fn parse(presence: &str) -> Presence {
        match presence {
            "online" => Presence::Online,
            "away" => Presence::Away,
            _ => Presence::Offline,
        }
    }
}

/// Sets an agent's presence.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"presence": "online"}))]
pub struct SetPresence {
    /// The new presence.
    pub presence: Presence,
}

/// Who an agent is, as routing needs it. Replaces the whole profile.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Li Wei",
    "skills": {"refund": 3, "complaints": 4},
    "languages": ["zh", "en"],
    "capacity": {"web": 3, "whatsapp": 2},
    "queues": ["general", "vip"]
}))]
pub struct AgentProfile {
    /// A display name.
    pub name: String,
    /// Skill → level, 1 to 5.
    #[serde(default)]
    pub skills: BTreeMap<String, u32>,
    /// Languages spoken (`zh`, `en`).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Channel → how many conversations on it the agent takes at once.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
    /// The queues served; empty or absent: every queue.
    #[serde(default)]
    pub queues: Vec<String>,
}

impl AgentProfile {
    pub(crate) fn into_proto(self) -> pb::AgentProfile {
        pb::AgentProfile {
            name: self.name,
            skills: self.skills.into_iter().collect(),
            languages: self.languages,
            capacity: self.capacity.into_iter().collect(),
            queues: self.queues,
        }
    }
}

/// An agent and what they are doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "agt_li_wei",
    "name": "Li Wei",
    "skills": {"complaints": 4, "refund": 3},
    "languages": ["zh", "en"],
    "capacity": {"web": 3, "whatsapp": 2},
    "queues": ["general", "vip"],
    "presence": "online",
    "assigned": ["conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"],
    "offered": []
}))]
pub struct Agent {
    /// `agt_…`.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Skill → level, 1 to 5.
    pub skills: BTreeMap<String, u32>,
    /// Languages spoken.
    pub languages: Vec<String>,
    /// Channel → how many conversations on it the agent takes at once.
    pub capacity: BTreeMap<String, u32>,
    /// The queues served; empty: every queue.
    pub queues: Vec<String>,
    /// Whether the agent takes conversations.
    pub presence: Presence,
    /// Conversations assigned to the agent.
    pub assigned: Vec<String>,
    /// Conversations offered to the agent and not yet answered.
    pub offered: Vec<String>,
}

impl From<pb::Agent> for Agent {
    fn from(agent: pb::Agent) -> Self {
        let profile = agent.profile.unwrap_or_default();
        Agent {
            id: agent.agent_id,
            name: profile.name,
            skills: profile.skills.into_iter().collect(),
            languages: profile.languages,
            capacity: profile.capacity.into_iter().collect(),
            queues: profile.queues,
            presence: Presence::parse(&agent.presence),
            assigned: agent.assigned,
            offered: agent.offered,
        }
    }
}

/// The tenant's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgentList {
    /// By id.
    pub agents: Vec<Agent>,
}

/// A skill an agent needs, at a minimum level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "refund", "min_level": 2}))]
pub struct SkillRequirement {
    /// The skill.
    pub name: String,
    /// 1 to 5.
    pub min_level: u32,
}

impl SkillRequirement {
    fn into_proto(self) -> pb::SkillRequirement {
        pb::SkillRequirement {
            name: self.name,
            min_level: self.min_level,
        }
    }

    fn from_proto(skill: pb::SkillRequirement) -> Self {
        SkillRequirement {
            name: skill.name,
            min_level: skill.min_level,
        }
    }
}

/// A recent message, carried with a handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecentMessage {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub text: String,
    /// When it was posted (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// What an agent should know about a conversation handed to humans.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Handoff {
    /// Why it came to a human: `customer_request`, `low_confidence`, `negative_sentiment` or
    /// `rule`.
    pub reason: String,
    /// When it started waiting (RFC 3339).
    #[schema(format = DateTime)]
    pub queued_at: String,
    /// Skills the agent needs.
    pub skills: Vec<SkillRequirement>,
    /// The agent must speak one of these; empty: any.
    pub languages: Vec<String>,
    /// The latest messages, oldest first.
    pub recent_messages: Vec<RecentMessage>,
    /// What the latest customer message said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub understanding: Option<Understanding>,
}

impl From<pb::ConversationQueued> for Handoff {
    fn from(queued: pb::ConversationQueued) -> Self {
        Handoff {
            reason: queued.reason,
            queued_at: timestamp_ms(queued.at_ms),
            skills: queued.skills.into_iter().map(SkillRequirement::from_proto).collect(),
            languages: queued.languages,
            recent_messages: queued
                .recent_messages
                .into_iter()
                .map(|m| RecentMessage {
                    role: Role::parse(&m.role).unwrap_or(Role::System),
                    text: m.text,
                    created_at: timestamp_ms(m.at_ms),
                })
                .collect(),
            understanding: queued.understanding.map(Understanding::from),
        }
    }
}

/// A conversation on an agent's desk.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "state": "offered",
    "queue": "general",
    "priority": 5,
    "channel": "web",
    "offer_expires_at": "2025-05-20T08:31:32.5Z",
    "handoff": {
        "reason": "customer_request",
        "queued_at": "2025-05-20T08:31:02.5Z",
        "skills": [],
        "languages": ["zh"],
        "recent_messages": [
            {"role": "customer", "text": "我的订单A-1024还没到", "created_at": "2025-05-20T08:30:40Z"},
            {"role": "bot", "text": "订单A-1024已于5月18日发货。", "created_at": "2025-05-20T08:30:41Z"},
            {"role": "customer", "text": "转人工", "created_at": "2025-05-20T08:31:02.5Z"}
        ],
        "understanding": {"language": "zh", "intents": [{"name": "human_handoff", "confidence": 0.93}], "fallback": false,
            "ambiguous": false, "sentiment": 0.0, "sentiment_label": "neutral", "entities": []}
    }
}))]
pub struct AgentConversation {
    /// The conversation.
    pub conversation_id: String,
    /// `offered` (accept or reject it before `offer_expires_at`) or `assigned`.
    pub state: String,
    /// The queue it came through.
    pub queue: String,
    /// Its routing priority, 1 to 10, higher first.
    pub priority: u32,
    /// Its channel.
    pub channel: String,
    /// For an offer: when it expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub offer_expires_at: Option<String>,
    /// How it came to a human and what was said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
}

impl From<pb::AgentConversation> for AgentConversation {
    fn from(conversation: pb::AgentConversation) -> Self {
        AgentConversation {
            conversation_id: conversation.conversation_id,
            state: conversation.state,
            queue: conversation.queue,
            priority: conversation.priority,
            channel: conversation.channel,
            offer_expires_at: time_ms(conversation.offer_expires_at_ms),
            handoff: conversation.handoff.map(Handoff::from),
        }
    }
}

/// The conversations offered to and assigned to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AgentConversationList {
    /// Offers and assignments.
    pub conversations: Vec<AgentConversation>,
}

/// The agent's reply to the customer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "您好，我是李伟，马上为您查询订单A-1024。"}))]
pub struct Reply {
    /// The text, at most 16 KiB by default.
    pub text: String,
}

/// An internal note; the customer never sees it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "Customer was promised a call-back before 18:00."}))]
pub struct AddNote {
    /// 1 to 4,000 characters.
    pub text: String,
}

/// An internal note on a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "note_0196f7b2c1d07a1b9e3c5d2f4a6b8c11",
    "conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "agent_id": "agt_li_wei",
    "text": "Customer was promised a call-back before 18:00.",
    "created_at": "2025-05-20T08:35:12.5Z"
}))]
pub struct Note {
    /// `note_…`.
    pub id: String,
    /// The conversation.
    pub conversation_id: String,
    /// Who wrote it.
    pub agent_id: String,
    /// The text.
    pub text: String,
    /// When it was written (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<pb::NoteAdded> for Note {
    fn from(note: pb::NoteAdded) -> Self {
        Note {
            id: note.note_id,
            conversation_id: note.conversation_id,
            agent_id: note.agent_id,
            text: note.text,
            created_at: timestamp_ms(note.at_ms),
        }
    }
}

/// A conversation's internal notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NoteList {
    /// Oldest first.
    pub notes: Vec<Note>,
}

/// Where to move a conversation: exactly one of `queue` (with optional `skills`), `agent_id`,
/// or `bot: true`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"queue": "vip", "skills": [{"name": "complaints", "min_level": 3}]}))]
pub struct Transfer {
    /// Wait in this queue (it must exist).
    #[serde(default)]
    pub queue: Option<String>,
    /// With `queue`: the skills needed there.
    #[serde(default)]
    pub skills: Option<Vec<SkillRequirement>>,
    /// Be offered to this agent (online, with free capacity on the conversation's channel).
    #[serde(default)]
    #[schema(example = "agt_zhao_min")]
    pub agent_id: Option<String>,
    /// `true`: go back to the bot.
    #[serde(default)]
    pub bot: Option<bool>,
}

impl Transfer {
    /// The request of `agent_id` transferring `conversation_id` here, or what is wrong.
    pub(crate) fn into_proto(self, agent_id: String, conversation_id: String) -> Result<pb::TransferRequest, Problem> {
        let mut targets = Vec::new();
        if let Some(queue) = self.queue {
            targets.push(pb::transfer_request::To::Queue(queue));
        }
        if let Some(agent) = self.agent_id {
            targets.push(pb::transfer_request::To::ToAgentId(agent));
        }
        match self.bot {
            Some(true) => targets.push(pb::transfer_request::To::Bot(true)),
            Some(false) => {
                return Err(invalid(
                    "bot: only `true` means anything; leave it out otherwise".into(),
                ));
            }
            None => {}
        }
        if targets.len() != 1 {
            return Err(invalid("give exactly one of `queue`, `agent_id` or `bot: true`".into()));
        }
        let to = targets.pop();
        let skills = self.skills.unwrap_or_default();
        if !skills.is_empty() && !matches!(to, Some(pb::transfer_request::To::Queue(_))) {
            return Err(invalid("skills: only a transfer to a `queue` takes skills".into()));
        }
        Ok(pb::TransferRequest {
            agent_id,
            conversation_id,
            to,
            skills: skills.into_iter().map(SkillRequirement::into_proto).collect(),
        })
    }
}

/// Where a conversation stands in routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "state": "waiting",
    "queue": "general",
    "priority": 5,
    "position": 3,
    "estimated_wait_secs": 140
}))]
pub struct RoutingStatus {
    /// The conversation.
    pub conversation_id: String,
    /// `bot`, `waiting`, `offered` or `assigned`.
    pub state: String,
    /// The queue, unless with the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Its routing priority, 1 to 10, higher first; unless with the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// While waiting: 1 is next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// While waiting: an estimate from the queue's recent pace, in seconds; absent until the
    /// queue has assigned something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_wait_secs: Option<u64>,
    /// When offered or assigned: the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl From<pb::RoutingStatus> for RoutingStatus {
    fn from(status: pb::RoutingStatus) -> Self {
        RoutingStatus {
            conversation_id: status.conversation_id,
            state: status.state,
            queue: non_empty(status.queue),
            priority: (status.priority != 0).then_some(status.priority),
            position: (status.position != 0).then_some(status.position),
            estimated_wait_secs: status.estimated_wait_secs,
            agent_id: non_empty(status.agent_id),
        }
    }
}

// ---- Queues ----

/// How a queue picks the agent to offer a conversation to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The eligible agent with the fewest conversations (the default).
    LeastBusy,
    /// Eligible agents in turn.
    RoundRobin,
}

impl Strategy {
    fn as_str(self) -> &'static str {
        match self {
            Strategy::LeastBusy => "least_busy",
            Strategy::RoundRobin => "round_robin",
        }
    }

    fn parse(strategy: &str) -> Strategy {
        match strategy {
            "round_robin" => Strategy::RoundRobin,
            _ => Strategy::LeastBusy,
        }
    }
}

/// What happens to a conversation that has waited `after_secs`: exactly one of
/// `raise_priority_to`, `overflow_to_queue` or `hold_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"after_secs": 120, "overflow_to_queue": "general"}))]
pub struct EscalationStep {
    /// Seconds of waiting.
    pub after_secs: u32,
    /// Raise the conversation's priority to this (1 to 10) if it is lower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_priority_to: Option<u32>,
    /// Move it to this queue, where it waits from the time of the move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_to_queue: Option<String>,
    /// Post this message to the customer, as the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_message: Option<String>,
}

impl EscalationStep {
    fn into_proto(self, index: usize) -> Result<pb::EscalationStep, Problem> {
        use pb::escalation_step::Action;
        let actions: Vec<Action> = [
            self.raise_priority_to.map(Action::RaisePriorityTo),
            self.overflow_to_queue.map(Action::OverflowToQueue),
            self.hold_message.map(Action::HoldMessage),
        ]
        .into_iter()
        .flatten()
        .collect();
        let [action] = <[Action; 1]>::try_from(actions).map_err(|_| {
            invalid(format!(
                "escalation[{index}]: give exactly one of `raise_priority_to`, `overflow_to_queue` or `hold_message`"
            ))
        })?;
        Ok(pb::EscalationStep {
            after_secs: self.after_secs,
            action: Some(action),
        })
    }

    fn from_proto(step: pb::EscalationStep) -> Self {
        use pb::escalation_step::Action;
        let mut out = EscalationStep {
            after_secs: step.after_secs,
            raise_priority_to: None,
            overflow_to_queue: None,
            hold_message: None,
        };
        match step.action {
            Some(Action::RaisePriorityTo(p)) => out.raise_priority_to = Some(p),
            Some(Action::OverflowToQueue(q)) => out.overflow_to_queue = Some(q),
            Some(Action::HoldMessage(m)) => out.hold_message = Some(m),
            None => {}
        }
        out
    }
}

/// A queue's settings. Replaces them all: a field not given takes its default.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "strategy": "least_busy",
    "offer_timeout_ms": 30000,
    "first_response_secs": 60,
    "max_wait_secs": 300,
    "escalation": [
        {"after_secs": 30, "hold_message": "All our agents are busy; we will be with you shortly."},
        {"after_secs": 60, "raise_priority_to": 8},
        {"after_secs": 120, "overflow_to_queue": "general"}
    ]
}))]
pub struct PutQueue {
    /// `least_busy` when not given.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// How long an agent has to accept an offer: 1 ms to 1 day; 30 s when not given.
    #[serde(default)]
    pub offer_timeout_ms: Option<u64>,
    /// Target for an agent's first answer after the assignment, in seconds; none when not given.
    #[serde(default)]
    pub first_response_secs: Option<u32>,
    /// Target for the longest wait for an agent, in seconds; none when not given.
    #[serde(default)]
    pub max_wait_secs: Option<u32>,
    /// What happens to conversations waiting past thresholds.
    #[serde(default)]
    pub escalation: Option<Vec<EscalationStep>>,
}

impl PutQueue {
    pub(crate) fn into_proto(self, queue: String) -> Result<pb::PutQueueRequest, Problem> {
        let escalation = self
            .escalation
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, step)| step.into_proto(index))
            .collect::<Result<_, _>>()?;
        Ok(pb::PutQueueRequest {
            queue,
            strategy: self.strategy.map(Strategy::as_str).unwrap_or_default().to_owned(),
            offer_timeout_ms: self.offer_timeout_ms.unwrap_or_default(),
            first_response_secs: self.first_response_secs.unwrap_or_default(),
            max_wait_secs: self.max_wait_secs.unwrap_or_default(),
            escalation,
        })
    }
}

/// A queue, its settings and its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "name": "vip",
    "strategy": "least_busy",
    "offer_timeout_ms": 30000,
    "first_response_secs": 60,
    "max_wait_secs": 300,
    "escalation": [{"after_secs": 120, "overflow_to_queue": "general"}],
    "waiting": ["conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"]
}))]
pub struct Queue {
    /// The queue's name.
    pub name: String,
    /// How it picks agents.
    pub strategy: Strategy,
    /// How long an agent has to accept an offer.
    pub offer_timeout_ms: u64,
    /// Target for an agent's first answer, in seconds; 0: none.
    pub first_response_secs: u32,
    /// Target for the longest wait, in seconds; 0: none.
    pub max_wait_secs: u32,
    /// What happens to conversations waiting past thresholds, in order of `after_secs`.
    pub escalation: Vec<EscalationStep>,
    /// Conversations waiting, in serving order.
    pub waiting: Vec<String>,
}

impl From<pb::Queue> for Queue {
    fn from(queue: pb::Queue) -> Self {
        let settings = queue.settings.unwrap_or_default();
        Queue {
            name: settings.queue,
            strategy: Strategy::parse(&settings.strategy),
            offer_timeout_ms: settings.offer_timeout_ms,
            first_response_secs: settings.first_response_secs,
            max_wait_secs: settings.max_wait_secs,
            escalation: settings
                .escalation
                .into_iter()
                .map(EscalationStep::from_proto)
                .collect(),
            waiting: queue.waiting,
        }
    }
}

/// The tenant's queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QueueList {
    /// By name.
    pub queues: Vec<Queue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_name_exactly_one_target() {
        let to = |body: &str| {
            serde_json::from_str::<Transfer>(body)
                .expect("shape")
                .into_proto("agt_a".into(), "conv_1".into())
        };
        let queue = to(r#"{"queue":"vip","skills":[{"name":"refund","min_level":2}]}"#).expect("queue");
        assert_eq!(queue.to, Some(pb::transfer_request::To::Queue("vip".into())));
        assert_eq!(queue.skills.len(), 1);
        assert_eq!(
            to(r#"{"agent_id":"agt_b"}"#).expect("agent").to,
            Some(pb::transfer_request::To::ToAgentId("agt_b".into()))
        );
        assert_eq!(
            to(r#"{"bot":true}"#).expect("bot").to,
            Some(pb::transfer_request::To::Bot(true))
        );
        for refused in [
            "{}",
            r#"{"bot":false}"#,
            r#"{"queue":"vip","bot":true}"#,
            r#"{"agent_id":"agt_b","skills":[{"name":"refund","min_level":2}]}"#,
        ] {
            let problem = to(refused).expect_err(refused);
            assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed), "{refused}");
        }
    }

    #[test]
    fn escalation_steps_take_one_action_and_round_trip() {
        let body: PutQueue = serde_json::from_str(
            r#"{"escalation":[{"after_secs":60,"raise_priority_to":8},{"after_secs":120,"overflow_to_queue":"general"},{"after_secs":30,"hold_message":"wait"}]}"#,
        )
        .expect("shape");
        let request = body.into_proto("vip".into()).expect("valid");
        let back: Vec<EscalationStep> = request.escalation.into_iter().map(EscalationStep::from_proto).collect();
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            json!([{"after_secs":60,"raise_priority_to":8},{"after_secs":120,"overflow_to_queue":"general"},{"after_secs":30,"hold_message":"wait"}])
        );
        let two: PutQueue =
            serde_json::from_str(r#"{"escalation":[{"after_secs":1,"raise_priority_to":8,"hold_message":"x"}]}"#)
                .expect("shape");
        let problem = two.into_proto("vip".into()).expect_err("two actions");
        assert!(problem.detail.unwrap_or_default().contains("escalation[0]"));
    }

    #[test]
    fn json_text_becomes_json_values() {
        let rules = RuleSet::from(pb::RuleSet {
            version: 2,
            rules_json: r#"{"version":2,"rules":[]}"#.into(),
            published_at_ms: 1_747_729_800_123,
        });
        assert_eq!(rules.rules["version"], 2);
        assert_eq!(rules.published_at.as_deref(), Some("2025-05-20T08:30:00.123Z"));
        let builtin = RuleSet::from(pb::RuleSet::default());
        assert_eq!(
            serde_json::to_value(builtin).expect("json"),
            json!({"version": 0, "rules": {}})
        );
        let intents = IntentSet::from(pb::IntentSet::default());
        assert_eq!(intents.intents, json!([]));
    }
}
