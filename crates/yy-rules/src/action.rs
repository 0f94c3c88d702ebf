//! What a matched rule tells the routing service to do, validated.

use serde::{Deserialize, Serialize};

use crate::facts::Language;

/// The validated action of a rule. Serialised, it has the same shape tenants write:
/// `{"route": "queue", "queue": "vip", "priority": 9, "skills": [...], "languages": [...],
/// "add_tags": [...], "escalate": true}` or `{"route": "bot", "add_tags": [], "escalate": false}`.
///
/// Invariants (from validation): tags are unique, 1 to 50 characters without control characters
/// or surrounding spaces, at most 20.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Who answers.
    #[serde(flatten)]
    pub route: Route,
    /// Tags to add to the conversation.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Flag the conversation for a supervisor's attention; what that entails (a notification, a
    /// higher conversation priority) is the routing service's policy.
    #[serde(default)]
    pub escalate: bool,
}

/// Who answers the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// The bot keeps (or starts) answering.
    Bot,
    /// The conversation waits in a queue for a human agent.
    Queue(QueueTarget),
}

/// A queue and what the agent taking the conversation must have.
///
/// Invariants: `queue` is 1 to 64 characters of `a-z`, `0-9`, `_` and `-` (and one of the known
/// queues when the set was validated against a list); `priority` is 1 to 10, higher first;
/// skill names are unique; languages are unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTarget {
    /// The queue's name.
    pub queue: String,
    /// 1 to 10: within a queue, conversations with a higher priority are served first.
    pub priority: u8,
    /// Every skill the agent needs, at the given level or above.
    #[serde(default)]
    pub skills: Vec<SkillRequirement>,
    /// The agent must speak one of these; empty: any agent.
    #[serde(default)]
    pub languages: Vec<Language>,
}

/// A skill an agent must have, at `min_level` (1 to 5) or above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillRequirement {
    /// The skill: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    pub name: String,
    /// 1 to 5.
    pub min_level: u8,
}
