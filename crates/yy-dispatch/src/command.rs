//! The commands: each checks a request against the state and returns the events to record. None
//! changes the state; [`Dispatcher::apply`] does, once the events are recorded.

use std::collections::BTreeMap;

use crate::error::Rejection;
use crate::event::{Event, WithdrawReason};
use crate::model::{
    AgentProfile, NewConversation, Presence, QueueConfig, TransferTarget, check_name, normalise_languages,
    normalise_skills,
};
use crate::state::{Agent, Conversation, Dispatcher, Status};

impl Dispatcher {
    /// Registers a new agent, offline and with no conversations.
    ///
    /// Refused when the id or the profile is invalid, or the agent exists.
    pub fn register_agent(&self, agent: &str, profile: AgentProfile) -> Result<Vec<Event>, Rejection> {
        check_name("agent", agent)?;
        profile.validate()?;
        if self.agents.contains_key(agent) {
            return Err(Rejection::AgentExists {
                agent: agent.to_owned(),
            });
        }
        Ok(vec![Event::AgentRegistered {
            agent: agent.to_owned(),
            profile,
        }])
    }

    /// Replaces an agent's profile. Pending offers that no longer fit are withdrawn first: those
    /// of queues the agent no longer serves or whose skills or languages they no longer meet
    /// (except direct offers, which never required them), and, on a channel whose capacity no
    /// longer holds the agent's conversations, the most recent offers until it does.
    /// Conversations already assigned stay, even above a lowered capacity; the agent then gets
    /// no offers on that channel until their load is below it again.
    ///
    /// Nothing is recorded when the profile is unchanged.
    pub fn update_agent(&self, agent: &str, profile: AgentProfile, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        profile.validate()?;
        let a = self.known_agent(agent)?;
        if a.profile == profile {
            return Ok(Vec::new());
        }
        let mut events: Vec<Event> = self
            .offers_not_fitting(a, &profile)
            .into_iter()
            .map(|conversation| Event::OfferWithdrawn {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
                reason: WithdrawReason::Profile,
                at_ms: now_ms,
            })
            .collect();
        events.push(Event::AgentUpdated {
            agent: agent.to_owned(),
            profile,
        });
        Ok(events)
    }

    /// Changes an agent's presence. Going away or offline withdraws their pending offers (the
    /// conversations wait at their places again); assigned conversations stay theirs.
    ///
    /// Nothing is recorded when the presence is unchanged.
    pub fn set_presence(&self, agent: &str, presence: Presence, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let a = self.known_agent(agent)?;
        if a.presence == presence {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        if presence != Presence::Online {
            events.extend(a.offered.iter().map(|conversation| Event::OfferWithdrawn {
                conversation: conversation.clone(),
                agent: agent.to_owned(),
                reason: WithdrawReason::Presence,
                at_ms: now_ms,
            }));
        }
        events.push(Event::PresenceChanged {
            agent: agent.to_owned(),
            presence,
            at_ms: now_ms,
        });
        Ok(events)
    }

    /// Creates a queue or changes its settings. A new strategy or timeout applies to offers made
    /// from then on; pending offers keep their expiry.
    ///
    /// Nothing is recorded when the settings are unchanged.
    pub fn configure_queue(&self, queue: &str, config: QueueConfig) -> Result<Vec<Event>, Rejection> {
        check_name("queue", queue)?;
        config.validate()?;
        if self.queues.get(queue).is_some_and(|q| q.config == config) {
            return Ok(Vec::new());
        }
        Ok(vec![Event::QueueConfigured {
            queue: queue.to_owned(),
            config,
        }])
    }

    /// Puts a conversation in a queue to wait for an agent, from `now_ms`.
    ///
    /// Refused when a field is invalid, the queue does not exist, or the conversation is already
    /// waiting, offered or assigned (transfer it instead).
    pub fn enqueue(&self, conversation: NewConversation, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        check_name("conversation", &conversation.id)?;
        check_name("queue", &conversation.queue)?;
        check_name("channel", &conversation.channel)?;
        let skills = normalise_skills("skills", &conversation.skills)?;
        let languages = normalise_languages("languages", &conversation.languages)?;
        if !self.queues.contains_key(&conversation.queue) {
            return Err(Rejection::UnknownQueue {
                queue: conversation.queue,
            });
        }
        if self.conversations.contains_key(&conversation.id) {
            return Err(Rejection::AlreadyQueued {
                conversation: conversation.id,
            });
        }
        Ok(vec![Event::Enqueued {
            conversation: conversation.id,
            queue: conversation.queue,
            priority: conversation.priority,
            channel: conversation.channel,
            skills,
            languages,
            at_ms: now_ms,
        }])
    }

    /// Changes a conversation's priority. It keeps its enqueue time, so among its new peers it
    /// stands where its waiting time puts it. Nothing is recorded when unchanged.
    pub fn set_priority(&self, conversation: &str, priority: u8, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let conv = self.known_conversation(conversation)?;
        if conv.priority == priority {
            return Ok(Vec::new());
        }
        Ok(vec![Event::PriorityChanged {
            conversation: conversation.to_owned(),
            priority,
            at_ms: now_ms,
        }])
    }

    /// Takes a conversation out of routing — resolved, or handed back to the bot — whatever its
    /// state: it stops waiting, its pending offer ends, or its agent's capacity is freed.
    ///
    /// A conversation the dispatcher does not know records nothing, so the service may call this
    /// for every conversation that leaves human hands without checking first.
    pub fn remove(&self, conversation: &str, now_ms: i64) -> Vec<Event> {
        let Some(conv) = self.conversations.get(conversation) else {
            return Vec::new();
        };
        vec![Event::Removed {
            conversation: conversation.to_owned(),
            agent: conv.status.agent().map(str::to_owned),
            at_ms: now_ms,
        }]
    }

    /// The service's timer reports that the offer of `conversation` to `agent` ran out. The
    /// conversation waits at its place again, and the agent is not offered it again before every
    /// other eligible agent had an offer of it.
    ///
    /// A timer that is stale (the offer was accepted, rejected or withdrawn, or a later offer
    /// replaced it) or early (`now_ms` before the expiry) records nothing, so timers need not be
    /// cancelled.
    pub fn offer_expired(&self, conversation: &str, agent: &str, now_ms: i64) -> Vec<Event> {
        match self.conversations.get(conversation).map(|c| &c.status) {
            Some(Status::Offered {
                agent: offered_to,
                expires_at_ms,
                ..
            }) if offered_to == agent && now_ms >= *expires_at_ms => vec![Event::OfferExpired {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
                at_ms: now_ms,
            }],
            _ => Vec::new(),
        }
    }

    /// The agent accepts the offer: the conversation is assigned to them.
    ///
    /// An offer stays acceptable until its expiry is recorded (the timer, not the clock, ends it),
    /// so an agent who clicks a moment late still gets a conversation nobody else has been
    /// offered. Accepting a conversation already assigned to the same agent records nothing (a
    /// retry); otherwise refused unless the conversation is offered to this agent.
    pub fn accept(&self, conversation: &str, agent: &str, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let conv = self.known_conversation(conversation)?;
        match &conv.status {
            Status::Assigned { agent: assigned_to, .. } if assigned_to == agent => Ok(Vec::new()),
            Status::Offered { agent: offered_to, .. } if offered_to == agent => Ok(vec![Event::Assigned {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
                queue: conv.queue.clone(),
                at_ms: now_ms,
                waited_ms: now_ms.saturating_sub(conv.enqueued_at_ms),
            }]),
            _ => Err(not_offered(conversation, agent)),
        }
    }

    /// The agent turns the offer down. The conversation waits at its place again, and the agent
    /// is not offered it again before every other eligible agent had an offer of it.
    pub fn reject(&self, conversation: &str, agent: &str, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let conv = self.known_conversation(conversation)?;
        match &conv.status {
            Status::Offered { agent: offered_to, .. } if offered_to == agent => Ok(vec![Event::OfferRejected {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
                at_ms: now_ms,
            }]),
            _ => Err(not_offered(conversation, agent)),
        }
    }

    /// Moves a conversation, whatever its state; a pending offer or an assignment ends (freeing
    /// that agent's capacity).
    ///
    /// To a queue: it waits there from `now_ms` with the given skills, keeping its priority,
    /// channel and languages; who declined it before starts afresh. To an agent: it is offered
    /// to them directly (expiring after its queue's offer timeout); refused unless the agent is
    /// online, has free capacity on its channel and is not already handling it.
    pub fn transfer(&self, conversation: &str, to: TransferTarget, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let conv = self.known_conversation(conversation)?;
        let from_agent = conv.status.agent().map(str::to_owned);
        match to {
            TransferTarget::Queue { queue, skills } => {
                check_name("to.queue", &queue)?;
                let skills = normalise_skills("to.skills", &skills)?;
                if !self.queues.contains_key(&queue) {
                    return Err(Rejection::UnknownQueue { queue });
                }
                Ok(vec![Event::Transferred {
                    conversation: conversation.to_owned(),
                    from_agent,
                    to: TransferTarget::Queue { queue, skills },
                    at_ms: now_ms,
                }])
            }
            TransferTarget::Agent { agent } => {
                let a = self.known_agent(&agent)?;
                let unavailable = |reason: String| Rejection::AgentUnavailable {
                    agent: agent.clone(),
                    reason,
                };
                if from_agent.as_deref() == Some(agent.as_str()) {
                    return Err(unavailable("the conversation is already theirs".into()));
                }
                if a.presence != Presence::Online {
                    return Err(unavailable(a.presence.as_str().to_owned()));
                }
                if a.free_on(&conv.channel) == 0 {
                    return Err(unavailable(format!(
                        "no free capacity on {} ({} of {})",
                        conv.channel,
                        a.load_on(&conv.channel),
                        a.profile.capacity_on(&conv.channel)
                    )));
                }
                let Some(queue) = self.queues.get(&conv.queue) else {
                    return Err(Rejection::UnknownQueue {
                        queue: conv.queue.clone(),
                    });
                };
                Ok(vec![
                    Event::Transferred {
                        conversation: conversation.to_owned(),
                        from_agent,
                        to: TransferTarget::Agent { agent: agent.clone() },
                        at_ms: now_ms,
                    },
                    Event::Offered {
                        conversation: conversation.to_owned(),
                        agent,
                        queue: conv.queue.clone(),
                        strategy: queue.config.strategy,
                        at_ms: now_ms,
                        expires_at_ms: expiry(now_ms, queue.config.offer_timeout_ms),
                        direct: true,
                        candidates: Vec::new(),
                    },
                ])
            }
        }
    }

    /// The agent is done with a conversation assigned to them: it leaves routing and their
    /// capacity on its channel is free again.
    pub fn release(&self, agent: &str, conversation: &str, now_ms: i64) -> Result<Vec<Event>, Rejection> {
        let conv = self.known_conversation(conversation)?;
        match &conv.status {
            Status::Assigned { agent: assigned_to, .. } if assigned_to == agent => Ok(vec![Event::Released {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
                at_ms: now_ms,
            }]),
            _ => Err(Rejection::NotAssigned {
                conversation: conversation.to_owned(),
                agent: agent.to_owned(),
            }),
        }
    }

    fn known_agent(&self, agent: &str) -> Result<&Agent, Rejection> {
        self.agents.get(agent).ok_or_else(|| Rejection::UnknownAgent {
            agent: agent.to_owned(),
        })
    }

    fn known_conversation(&self, conversation: &str) -> Result<&Conversation, Rejection> {
        self.conversations
            .get(conversation)
            .ok_or_else(|| Rejection::UnknownConversation {
                conversation: conversation.to_owned(),
            })
    }

    /// The agent's pending offers that `profile` no longer allows, by conversation id.
    fn offers_not_fitting<'a>(&'a self, agent: &'a Agent, profile: &AgentProfile) -> Vec<&'a str> {
        let mut withdrawn = Vec::new();
        // Channel → offers that still fit otherwise, as (offered at, id) to drop the newest first.
        let mut kept: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
        for id in &agent.offered {
            let Some(conv) = self.conversations.get(id) else {
                continue;
            };
            let Status::Offered {
                offered_at_ms, direct, ..
            } = &conv.status
            else {
                continue;
            };
            let fits = *direct
                || (profile.serves(&conv.queue)
                    && profile.missing_skill(&conv.skills).is_none()
                    && profile.speaks_any(&conv.languages));
            if fits {
                kept.entry(conv.channel.as_str())
                    .or_default()
                    .push((*offered_at_ms, id));
            } else {
                withdrawn.push(id.as_str());
            }
        }
        for (channel, mut offers) in kept {
            let assigned = agent
                .assigned
                .iter()
                .filter(|id| self.conversations.get(*id).is_some_and(|c| c.channel == channel))
                .count();
            let room = usize::try_from(profile.capacity_on(channel))
                .unwrap_or(usize::MAX)
                .saturating_sub(assigned);
            if offers.len() > room {
                offers.sort_unstable();
                withdrawn.extend(offers.iter().skip(room).map(|(_, id)| *id));
            }
        }
        withdrawn.sort_unstable();
        withdrawn
    }
}

fn not_offered(conversation: &str, agent: &str) -> Rejection {
    Rejection::NotOffered {
        conversation: conversation.to_owned(),
        agent: agent.to_owned(),
    }
}

/// When an offer made at `now_ms` expires; saturates rather than overflows.
pub(crate) fn expiry(now_ms: i64, timeout_ms: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX))
}
