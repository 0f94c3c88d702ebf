//! What the dispatcher is told: agents' profiles, queues' settings, and what a waiting
//! conversation needs. Every value here is validated by the command that carries it, so the
//! events and the state only ever hold values within these bounds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Rejection;

/// The longest id or name (agent, conversation, queue, channel, skill, language), in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The highest skill level; levels run from 1 to this.
pub const MAX_SKILL_LEVEL: u8 = 5;
/// The most conversations an agent may take on one channel.
pub const MAX_CAPACITY: u32 = 1_000;
/// The most entries in any list or map of a profile or a conversation's requirements.
pub const MAX_ENTRIES: usize = 64;
/// The longest offer timeout: one day.
pub const MAX_OFFER_TIMEOUT_MS: u64 = 86_400_000;

/// Whether an agent can take conversations now.
///
/// Only `Online` agents receive offers. Going `Away` or `Offline` withdraws the agent's pending
/// offers but keeps the conversations already assigned: taking a conversation away from an agent
/// mid-reply is the service's decision (a transfer), not a side effect of presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Ready for new conversations.
    Online,
    /// Signed in but not taking new conversations.
    Away,
    /// Signed out. A newly registered agent starts here.
    Offline,
}

impl Presence {
    /// The name as serialised: `online`, `away` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

/// Who an agent is, as the routing needs it.
///
/// Invariants (checked by [`crate::Dispatcher::register_agent`] and
/// [`crate::Dispatcher::update_agent`]): every name is a valid name (1 to [`MAX_NAME_BYTES`]
/// bytes, no control characters); skill levels are 1 to [`MAX_SKILL_LEVEL`]; capacities are at
/// most [`MAX_CAPACITY`]; each collection has at most [`MAX_ENTRIES`] entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    /// Skill name → level (1 to 5). A skill that is absent counts as level 0.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// The languages the agent speaks.
    #[serde(default)]
    pub languages: BTreeSet<String>,
    /// Channel → how many conversations on it the agent takes at once. A channel that is absent
    /// (or 0) is one the agent does not work on.
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
    /// The queues the agent serves; empty: every queue.
    #[serde(default)]
    pub queues: BTreeSet<String>,
}

impl AgentProfile {
    /// How many conversations the agent takes at once on `channel`; 0 when it does not work on it.
    pub fn capacity_on(&self, channel: &str) -> u32 {
        self.capacity.get(channel).copied().unwrap_or(0)
    }

    /// The agent's level in `skill`; 0 when it does not have it.
    pub fn level(&self, skill: &str) -> u8 {
        self.skills.get(skill).copied().unwrap_or(0)
    }

    /// Whether the agent serves `queue` (an empty list serves every queue).
    pub fn serves(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.contains(queue)
    }

    /// Whether the agent speaks one of `languages` (an empty list accepts any agent).
    pub fn speaks_any(&self, languages: &[String]) -> bool {
        languages.is_empty() || languages.iter().any(|l| self.languages.contains(l))
    }

    /// The first requirement the agent falls short of, with its level in that skill.
    pub fn missing_skill<'a>(&self, skills: &'a [SkillRequirement]) -> Option<(&'a SkillRequirement, u8)> {
        skills.iter().find_map(|req| {
            let level = self.level(&req.name);
            (level < req.min_level).then_some((req, level))
        })
    }

    /// The sum of the capacities of all channels.
    pub fn total_capacity(&self) -> u64 {
        self.capacity.values().map(|&c| u64::from(c)).sum()
    }

    pub(crate) fn validate(&self) -> Result<(), Rejection> {
        check_count("profile.skills", self.skills.len())?;
        for (name, &level) in &self.skills {
            check_name("profile.skills", name)?;
            check_level(&format!("profile.skills[{name}]"), level)?;
        }
        check_count("profile.languages", self.languages.len())?;
        for language in &self.languages {
            check_name("profile.languages", language)?;
        }
        check_count("profile.capacity", self.capacity.len())?;
        for (channel, &capacity) in &self.capacity {
            check_name("profile.capacity", channel)?;
            if capacity > MAX_CAPACITY {
                return Err(Rejection::invalid(
                    format!("profile.capacity[{channel}]"),
                    format!("must be at most {MAX_CAPACITY}"),
                ));
            }
        }
        check_count("profile.queues", self.queues.len())?;
        for queue in &self.queues {
            check_name("profile.queues", queue)?;
        }
        Ok(())
    }
}

/// A skill a conversation needs, at `min_level` or above.
///
/// Invariants: `name` is a valid name; `min_level` is 1 to [`MAX_SKILL_LEVEL`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillRequirement {
    /// The skill.
    pub name: String,
    /// The lowest acceptable level, 1 to 5.
    pub min_level: u8,
}

impl SkillRequirement {
    /// A requirement of `name` at `min_level` or above.
    pub fn new(name: impl Into<String>, min_level: u8) -> Self {
        SkillRequirement {
            name: name.into(),
            min_level,
        }
    }
}

/// How a queue picks among the agents who may take a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent using the smallest share of their total capacity (conversations assigned and
    /// offered, over the sum of their channel capacities); ties go to the agent idle longest
    /// (oldest assignment or release, never-assigned first), then to the smaller agent id.
    #[default]
    LeastBusy,
    /// The next eligible agent after the one this queue offered to last, in agent-id order,
    /// wrapping around.
    RoundRobin,
}

/// Service-level targets of a queue. Carried for the service and for reports; the dispatcher
/// does not act on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// An agent should first answer within this many seconds of the assignment.
    #[serde(default)]
    pub first_response_secs: Option<u32>,
    /// A conversation should not wait longer than this many seconds for an agent.
    #[serde(default)]
    pub max_wait_secs: Option<u32>,
}

/// A queue's settings.
///
/// Invariant (checked by [`crate::Dispatcher::configure_queue`]): `offer_timeout_ms` is 1 to
/// [`MAX_OFFER_TIMEOUT_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// How agents are picked.
    #[serde(default)]
    pub strategy: Strategy,
    /// How long an agent has to accept an offer, in milliseconds.
    pub offer_timeout_ms: u64,
    /// Targets carried for the service.
    #[serde(default)]
    pub sla: Sla,
}

impl QueueConfig {
    /// A queue with `strategy`, `offer_timeout_ms` and no SLA targets.
    pub fn new(strategy: Strategy, offer_timeout_ms: u64) -> Self {
        QueueConfig {
            strategy,
            offer_timeout_ms,
            sla: Sla::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Rejection> {
        if !(1..=MAX_OFFER_TIMEOUT_MS).contains(&self.offer_timeout_ms) {
            return Err(Rejection::invalid(
                "config.offer_timeout_ms",
                format!("must be 1 to {MAX_OFFER_TIMEOUT_MS}"),
            ));
        }
        Ok(())
    }
}

/// A conversation that starts waiting for an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConversation {
    /// Its id.
    pub id: String,
    /// The queue it waits in; must be configured.
    pub queue: String,
    /// Higher is served first.
    pub priority: u8,
    /// The channel it is on; the agent needs free capacity there.
    pub channel: String,
    /// Every skill the agent needs, at the given level or above; names unique.
    pub skills: Vec<SkillRequirement>,
    /// The agent must speak one of these; empty: any agent. Repeats are dropped.
    pub languages: Vec<String>,
}

/// Where [`crate::Dispatcher::transfer`] sends a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum TransferTarget {
    /// Wait in another (or the same) queue, from the time of the transfer, needing these skills
    /// there. The priority, channel and languages stay.
    Queue {
        /// The queue.
        queue: String,
        /// The skills needed in that queue (names unique).
        skills: Vec<SkillRequirement>,
    },
    /// Offer it to this agent directly. The agent must be online with free capacity on the
    /// conversation's channel; skills, languages and queue membership are the transferring
    /// person's call. If the agent rejects or lets the offer expire, the conversation waits in
    /// its queue again at its place.
    Agent {
        /// The agent.
        agent: String,
    },
}

/// Checks an id or a name: 1 to [`MAX_NAME_BYTES`] bytes without control characters.
pub(crate) fn check_name(field: &str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES {
        return Err(Rejection::invalid(
            field,
            format!("must be 1 to {MAX_NAME_BYTES} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_level(field: &str, level: u8) -> Result<(), Rejection> {
    if !(1..=MAX_SKILL_LEVEL).contains(&level) {
        return Err(Rejection::invalid(field, format!("must be 1 to {MAX_SKILL_LEVEL}")));
    }
    Ok(())
}

fn check_count(field: &str, count: usize) -> Result<(), Rejection> {
    if count > MAX_ENTRIES {
        return Err(Rejection::invalid(field, format!("at most {MAX_ENTRIES} entries")));
    }
    Ok(())
}

/// Validates skill requirements and returns them sorted by name, so equal requirements are
/// equal values (which also makes them usable as a key of "nobody can take this" in dispatch).
pub(crate) fn normalise_skills(field: &str, skills: &[SkillRequirement]) -> Result<Vec<SkillRequirement>, Rejection> {
    check_count(field, skills.len())?;
    let mut sorted = skills.to_vec();
    sorted.sort();
    for req in &sorted {
        check_name(field, &req.name)?;
        check_level(&format!("{field}[{}].min_level", req.name), req.min_level)?;
    }
    // Sorted by name first, so a repeated name sits next to itself.
    if let Some((twice, _)) = sorted.iter().zip(sorted.iter().skip(1)).find(|(a, b)| a.name == b.name) {
        return Err(Rejection::invalid(
            field,
            format!("skill {} is listed twice", twice.name),
        ));
    }
    Ok(sorted)
}

/// Validates languages and returns them sorted without repeats.
pub(crate) fn normalise_languages(field: &str, languages: &[String]) -> Result<Vec<String>, Rejection> {
    check_count(field, languages.len())?;
    for language in languages {
        check_name(field, language)?;
    }
    let set: BTreeSet<&String> = languages.iter().collect();
    Ok(set.into_iter().cloned().collect())
}
