//! The facts the dispatcher records. Commands return them; [`crate::Dispatcher::apply`] folds
//! them. They serialise to JSON objects tagged by `type` (`{"type": "offered", ...}`), times in
//! milliseconds since the epoch.

use serde::{Deserialize, Serialize};

use crate::model::{AgentProfile, Presence, QueueConfig, SkillRequirement, Strategy, TransferTarget};

/// Something that happened to the dispatcher's state.
///
/// Events only ever come from the commands and from [`crate::Dispatcher::dispatch`], which check
/// them against the state; applying them in the order they were returned reproduces the state.
/// Applying an event that does not fit the state (one from a damaged log) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new agent, offline, with no conversations.
    AgentRegistered {
        /// The agent.
        agent: String,
        /// Its profile.
        profile: AgentProfile,
    },
    /// An agent's profile changed. Offers that no longer fit it were withdrawn by the
    /// [`Event::OfferWithdrawn`] events recorded just before.
    AgentUpdated {
        /// The agent.
        agent: String,
        /// The new profile.
        profile: AgentProfile,
    },
    /// An agent's presence changed.
    PresenceChanged {
        /// The agent.
        agent: String,
        /// The new presence.
        presence: Presence,
        /// When.
        at_ms: i64,
    },
    /// A queue was created or its settings changed.
    QueueConfigured {
        /// The queue.
        queue: String,
        /// Its settings.
        config: QueueConfig,
    },
    /// A conversation started waiting.
    Enqueued {
        /// The conversation.
        conversation: String,
        /// The queue.
        queue: String,
        /// Higher first.
        priority: u8,
        /// Its channel.
        channel: String,
        /// Skills the agent needs, sorted by name.
        skills: Vec<SkillRequirement>,
        /// The agent must speak one of these (sorted); empty: any.
        languages: Vec<String>,
        /// When; it orders conversations of equal priority.
        at_ms: i64,
    },
    /// A queued conversation's priority changed; it keeps its enqueue time.
    PriorityChanged {
        /// The conversation.
        conversation: String,
        /// The new priority.
        priority: u8,
        /// When.
        at_ms: i64,
    },
    /// A waiting conversation was offered to an agent: the routing decision.
    Offered {
        /// The conversation.
        conversation: String,
        /// The agent it is offered to.
        agent: String,
        /// The conversation's queue.
        queue: String,
        /// The queue's strategy when the choice was made.
        strategy: Strategy,
        /// When.
        at_ms: i64,
        /// When the offer expires unless accepted or rejected first.
        expires_at_ms: i64,
        /// Made by a transfer to this agent rather than chosen by the queue's strategy.
        #[serde(default)]
        direct: bool,
        /// Why each agent serving the queue was or was not chosen, in agent-id order; empty for
        /// a direct offer.
        #[serde(default)]
        candidates: Vec<Candidate>,
    },
    /// The agent turned the offer down; the conversation waits at its place again.
    OfferRejected {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
        /// When.
        at_ms: i64,
    },
    /// The offer ran out; the conversation waits at its place again.
    OfferExpired {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
        /// When the expiry was processed (at or after the offer's `expires_at_ms`).
        at_ms: i64,
    },
    /// The offer was taken back through no doing of the agent's; the conversation waits at its
    /// place again and may be offered to the same agent later.
    OfferWithdrawn {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
        /// Why.
        reason: WithdrawReason,
        /// When.
        at_ms: i64,
    },
    /// The agent accepted: the conversation is theirs.
    Assigned {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
        /// The queue it waited in.
        queue: String,
        /// When.
        at_ms: i64,
        /// How long it waited since it was enqueued (or transferred to a queue), in ms.
        waited_ms: i64,
    },
    /// The agent is done with the conversation; it leaves the dispatcher and frees the
    /// agent's capacity.
    Released {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
        /// When.
        at_ms: i64,
    },
    /// The conversation left routing (resolved, or handed back to the bot) in whatever state
    /// it was; an offer or assignment it had ends with it.
    Removed {
        /// The conversation.
        conversation: String,
        /// The agent it was offered or assigned to, if any.
        agent: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// The conversation was moved: to wait in a queue, or to be offered to an agent (the
    /// [`Event::Offered`] with `direct: true` follows). A pending offer or an assignment it had
    /// ends.
    Transferred {
        /// The conversation.
        conversation: String,
        /// The agent it was offered or assigned to before, if any.
        from_agent: Option<String>,
        /// Where it goes.
        to: TransferTarget,
        /// When.
        at_ms: i64,
    },
}

impl Event {
    /// The conversation the event is about, if it is about one.
    pub fn conversation(&self) -> Option<&str> {
        match self {
            Event::Enqueued { conversation, .. }
            | Event::PriorityChanged { conversation, .. }
            | Event::Offered { conversation, .. }
            | Event::OfferRejected { conversation, .. }
            | Event::OfferExpired { conversation, .. }
            | Event::OfferWithdrawn { conversation, .. }
            | Event::Assigned { conversation, .. }
            | Event::Released { conversation, .. }
            | Event::Removed { conversation, .. }
            | Event::Transferred { conversation, .. } => Some(conversation),
            Event::AgentRegistered { .. }
            | Event::AgentUpdated { .. }
            | Event::PresenceChanged { .. }
            | Event::QueueConfigured { .. } => None,
        }
    }
}

/// Why an offer was taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// The agent went away or offline.
    Presence,
    /// The agent's new profile no longer fits the conversation (queue, skill, language or
    /// capacity).
    Profile,
}

/// One agent considered for an offer and the verdict. Serialised flat and small:
/// `{"agent": "agt_7", "reason": "missing_skill", "skill": "refund", "min_level": 2, "level": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The agent.
    pub agent: String,
    /// Why it was or was not chosen.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Why an agent was or was not chosen for an offer. The first reason that applies, checked in
/// this order: presence, skills, language, capacity, earlier refusals, strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Verdict {
    /// The agent got the offer.
    Chosen,
    /// Eligible, but the queue's strategy preferred the chosen agent (busier, idle for less
    /// time, or not next in the rotation).
    LostTieBreak,
    /// Eligible, but they rejected or let expire an offer of this conversation more often than
    /// another eligible agent, who goes first.
    DeclinedBefore {
        /// How many offers of this conversation the agent rejected or let expire.
        times: u32,
    },
    /// Away.
    Away,
    /// Offline.
    Offline,
    /// Below the level the conversation needs in a skill (the first such skill).
    MissingSkill {
        /// The skill.
        skill: String,
        /// The level needed.
        min_level: u8,
        /// The agent's level; 0 when they lack the skill.
        level: u8,
    },
    /// Speaks none of the conversation's languages.
    Language,
    /// No free capacity on the conversation's channel (capacity 0: does not work on it).
    NoCapacity {
        /// Conversations assigned and offered on that channel.
        load: u32,
        /// The agent's capacity on that channel.
        capacity: u32,
    },
}
