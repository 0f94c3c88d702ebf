//! Why a command was refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a command was refused. A refused command records nothing: the state is as before.
///
/// Each kind maps to one answer of the routing API: `Invalid` to a bad request, the `Unknown…`
/// kinds to not found, `AgentExists` to already exists, and the rest to a failed precondition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rejection {
    /// Malformed input.
    Invalid {
        /// The field, such as `profile.skills[refund]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No agent has this id.
    UnknownAgent {
        /// The agent.
        agent: String,
    },
    /// No queue has this name.
    UnknownQueue {
        /// The queue.
        queue: String,
    },
    /// The dispatcher does not know this conversation (it never waited, or it was released or
    /// removed).
    UnknownConversation {
        /// The conversation.
        conversation: String,
    },
    /// An agent with this id is already registered; update it instead.
    AgentExists {
        /// The agent.
        agent: String,
    },
    /// The conversation is already waiting, offered or assigned; transfer it instead.
    AlreadyQueued {
        /// The conversation.
        conversation: String,
    },
    /// The conversation is not offered to this agent (never was, or the offer was accepted,
    /// rejected, expired or withdrawn).
    NotOffered {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
    },
    /// The conversation is not assigned to this agent.
    NotAssigned {
        /// The conversation.
        conversation: String,
        /// The agent.
        agent: String,
    },
    /// A transfer to an agent who cannot take the conversation now: not online, no free
    /// capacity on its channel, or already handling it.
    AgentUnavailable {
        /// The agent.
        agent: String,
        /// Why.
        reason: String,
    },
}

impl Rejection {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Rejection::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            Rejection::UnknownAgent { agent } => write!(f, "agent {agent} not found"),
            Rejection::UnknownQueue { queue } => write!(f, "queue {queue} not found"),
            Rejection::UnknownConversation { conversation } => {
                write!(f, "conversation {conversation} is not waiting, offered or assigned")
            }
            Rejection::AgentExists { agent } => write!(f, "agent {agent} is already registered"),
            Rejection::AlreadyQueued { conversation } => {
                write!(f, "conversation {conversation} is already queued; transfer it instead")
            }
            Rejection::NotOffered { conversation, agent } => {
                write!(f, "conversation {conversation} is not offered to agent {agent}")
            }
            Rejection::NotAssigned { conversation, agent } => {
                write!(f, "conversation {conversation} is not assigned to agent {agent}")
            }
            Rejection::AgentUnavailable { agent, reason } => write!(f, "agent {agent} cannot take it: {reason}"),
        }
    }
}

impl std::error::Error for Rejection {}
