//! The dispatcher's events as they are stored: `yy-dispatch` decides in its own types, the log
//! keeps the documented protobuf messages of `yy.routing.v1`. The two convert both ways without
//! loss, so a desk replayed from the log is the desk that decided.

use std::collections::{BTreeMap, BTreeSet};

use yy_dispatch::{
    AgentProfile, Candidate, Event, Presence, QueueConfig, SkillRequirement, Sla, Strategy, TransferTarget, Verdict,
    WithdrawReason,
};
use yy_eventlog::Payload;
use yy_proto::routing::v1 as pb;

pub fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::LeastBusy => "least_busy",
        Strategy::RoundRobin => "round_robin",
    }
}

pub fn parse_strategy(name: &str) -> Option<Strategy> {
    match name {
        "" | "least_busy" => Some(Strategy::LeastBusy),
        "round_robin" => Some(Strategy::RoundRobin),
        _ => None,
    }
}

pub fn parse_presence(name: &str) -> Option<Presence> {
    match name {
        "online" => Some(Presence::Online),
        "away" => Some(Presence::Away),
        "offline" => Some(Presence::Offline),
        _ => None,
    }
}

fn skills_to_proto(skills: &[SkillRequirement]) -> Vec<pb::SkillRequirement> {
    skills
        .iter()
        .map(|s| pb::SkillRequirement {
            name: s.name.clone(),
            min_level: u32::from(s.min_level),
        })
        .collect()
}

/// Skill requirements from the wire; a level beyond what the dispatcher accepts saturates so
/// that validation refuses it with the field's name rather than wrapping around.
pub fn skills_from_proto(skills: &[pb::SkillRequirement]) -> Vec<SkillRequirement> {
    skills
        .iter()
        .map(|s| SkillRequirement::new(s.name.clone(), u8::try_from(s.min_level).unwrap_or(u8::MAX)))
        .collect()
}

/// The dispatcher's profile from the wire (the display name is kept beside it).
pub fn profile_from_proto(profile: &pb::AgentProfile) -> AgentProfile {
    AgentProfile {
        skills: profile
            .skills
            .iter()
            .map(|(k, &v)| (k.clone(), u8::try_from(v).unwrap_or(u8::MAX)))
            .collect(),
        languages: profile.languages.iter().cloned().collect(),
        capacity: profile.capacity.iter().map(|(k, &v)| (k.clone(), v)).collect(),
        queues: profile.queues.iter().cloned().collect(),
    }
}

pub fn profile_to_proto(name: &str, profile: &AgentProfile) -> pb::AgentProfile {
    pb::AgentProfile {
        name: name.to_owned(),
        skills: profile.skills.iter().map(|(k, &v)| (k.clone(), u32::from(v))).collect(),
        languages: profile.languages.iter().cloned().collect(),
        capacity: profile.capacity.iter().map(|(k, &v)| (k.clone(), v)).collect(),
        queues: profile.queues.iter().cloned().collect(),
    }
}

pub fn queue_config(settings: &pb::QueueConfigured) -> Option<QueueConfig> {
    Some(QueueConfig {
        strategy: parse_strategy(&settings.strategy)?,
        offer_timeout_ms: settings.offer_timeout_ms,
        sla: Sla {
            first_response_secs: (settings.first_response_secs > 0).then_some(settings.first_response_secs),
            max_wait_secs: (settings.max_wait_secs > 0).then_some(settings.max_wait_secs),
        },
    })
}

fn verdict_to_proto(candidate: &Candidate) -> pb::Candidate {
    let (verdict, details) = match &candidate.verdict {
        Verdict::Chosen => ("chosen", String::new()),
        Verdict::LostTieBreak => ("lost_tie_break", String::new()),
        Verdict::DeclinedBefore { times } => ("declined_before", format!(r#"{{"times":{times}}}"#)),
        Verdict::Away => ("away", String::new()),
        Verdict::Offline => ("offline", String::new()),
        Verdict::MissingSkill {
            skill,
            min_level,
            level,
        } => (
            "missing_skill",
            serde_json::json!({"skill": skill, "min_level": min_level, "level": level}).to_string(),
        ),
        Verdict::Language => ("language", String::new()),
        Verdict::NoCapacity { load, capacity } => {
            ("no_capacity", format!(r#"{{"load":{load},"capacity":{capacity}}}"#))
        }
    };
    pb::Candidate {
        agent_id: candidate.agent.clone(),
        verdict: verdict.to_owned(),
        details_json: details,
    }
}

fn verdict_from_proto(candidate: &pb::Candidate) -> Candidate {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Details {
        times: u32,
        skill: String,
        min_level: u8,
        level: u8,
        load: u32,
        capacity: u32,
    }
    let d: Details = serde_json::from_str(&candidate.details_json).unwrap_or_default();
    let verdict = match candidate.verdict.as_str() {
        "chosen" => Verdict::Chosen,
        "declined_before" => Verdict::DeclinedBefore { times: d.times },
        "away" => Verdict::Away,
        "offline" => Verdict::Offline,
        "missing_skill" => Verdict::MissingSkill {
            skill: d.skill,
            min_level: d.min_level,
            level: d.level,
        },
        "language" => Verdict::Language,
        "no_capacity" => Verdict::NoCapacity {
            load: d.load,
            capacity: d.capacity,
        },
        _ => Verdict::LostTieBreak,
    };
    Candidate {
        agent: candidate.agent_id.clone(),
        verdict,
    }
}

fn opt(agent: &Option<String>) -> String {
    agent.clone().unwrap_or_default()
}

fn non_empty(agent: &str) -> Option<String> {
    (!agent.is_empty()).then(|| agent.to_owned())
}

/// The stored form of a dispatcher event. `names` gives the display names of agents being
/// registered or updated; `handoff` completes an `enqueued` event with why and what came before.
pub fn to_payload(
    event: &Event,
    names: &BTreeMap<String, String>,
    handoff: Option<&pb::ConversationQueued>,
) -> Payload {
    match event {
        Event::AgentRegistered { agent, profile } => Payload::AgentRegistered(pb::AgentRegistered {
            agent_id: agent.clone(),
            profile: Some(profile_to_proto(names.get(agent).map_or("", String::as_str), profile)),
        }),
        Event::AgentUpdated { agent, profile } => Payload::AgentUpdated(pb::AgentUpdated {
            agent_id: agent.clone(),
            profile: Some(profile_to_proto(names.get(agent).map_or("", String::as_str), profile)),
        }),
        Event::PresenceChanged { agent, presence, at_ms } => Payload::AgentPresenceChanged(pb::AgentPresenceChanged {
            agent_id: agent.clone(),
            presence: presence.as_str().to_owned(),
            at_ms: *at_ms,
        }),
        Event::QueueConfigured { queue, config } => Payload::QueueConfigured(pb::QueueConfigured {
            queue: queue.clone(),
            strategy: strategy_name(config.strategy).to_owned(),
            offer_timeout_ms: config.offer_timeout_ms,
            first_response_secs: config.sla.first_response_secs.unwrap_or(0),
            max_wait_secs: config.sla.max_wait_secs.unwrap_or(0),
            escalation: Vec::new(),
        }),
        Event::Enqueued {
            conversation,
            queue,
            priority,
            channel,
            skills,
            languages,
            at_ms,
        } => {
            let mut queued = handoff.cloned().unwrap_or_default();
            queued.conversation_id = conversation.clone();
            queued.queue = queue.clone();
            queued.priority = u32::from(*priority);
            queued.channel = channel.clone();
            queued.skills = skills_to_proto(skills);
            queued.languages = languages.clone();
            queued.at_ms = *at_ms;
            Payload::ConversationQueued(queued)
        }
        Event::PriorityChanged {
            conversation,
            priority,
            at_ms,
        } => Payload::QueuePriorityChanged(pb::QueuePriorityChanged {
            conversation_id: conversation.clone(),
            priority: u32::from(*priority),
            at_ms: *at_ms,
        }),
        Event::Offered {
            conversation,
            agent,
            queue,
            strategy,
            at_ms,
            expires_at_ms,
            direct,
            candidates,
        } => Payload::ConversationOffered(pb::ConversationOffered {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            queue: queue.clone(),
            strategy: strategy_name(*strategy).to_owned(),
            at_ms: *at_ms,
            expires_at_ms: *expires_at_ms,
            direct: *direct,
            candidates: candidates.iter().map(verdict_to_proto).collect(),
        }),
        Event::OfferRejected {
            conversation,
            agent,
            at_ms,
        } => Payload::OfferRejected(pb::OfferRejected {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            at_ms: *at_ms,
        }),
        Event::OfferExpired {
            conversation,
            agent,
            at_ms,
        } => Payload::OfferExpired(pb::OfferExpired {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            at_ms: *at_ms,
        }),
        Event::OfferWithdrawn {
            conversation,
            agent,
            reason,
            at_ms,
        } => Payload::OfferWithdrawn(pb::OfferWithdrawn {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            reason: match reason {
                WithdrawReason::Presence => "presence",
                WithdrawReason::Profile => "profile",
            }
            .to_owned(),
            at_ms: *at_ms,
        }),
        Event::Assigned {
            conversation,
            agent,
            queue,
            at_ms,
            waited_ms,
        } => Payload::ConversationAssigned(pb::ConversationAssigned {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            queue: queue.clone(),
            at_ms: *at_ms,
            waited_ms: *waited_ms,
        }),
        Event::Released {
            conversation,
            agent,
            at_ms,
        } => Payload::ConversationReleased(pb::ConversationReleased {
            conversation_id: conversation.clone(),
            agent_id: agent.clone(),
            at_ms: *at_ms,
        }),
        Event::Removed {
            conversation,
            agent,
            at_ms,
        } => Payload::ConversationDequeued(pb::ConversationDequeued {
            conversation_id: conversation.clone(),
            agent_id: opt(agent),
            at_ms: *at_ms,
            reason: String::new(),
        }),
        Event::Transferred {
            conversation,
            from_agent,
            to,
            at_ms,
        } => {
            let (to_queue, to_agent_id, skills) = match to {
                TransferTarget::Queue { queue, skills } => (queue.clone(), String::new(), skills_to_proto(skills)),
                TransferTarget::Agent { agent } => (String::new(), agent.clone(), Vec::new()),
            };
            Payload::ConversationTransferred(pb::ConversationTransferred {
                conversation_id: conversation.clone(),
                from_agent_id: opt(from_agent),
                to_queue,
                to_agent_id,
                skills,
                at_ms: *at_ms,
            })
        }
    }
}

/// The dispatcher event a stored payload records, if it records one.
pub fn from_payload(payload: &Payload) -> Option<Event> {
    Some(match payload {
        Payload::AgentRegistered(e) => Event::AgentRegistered {
            agent: e.agent_id.clone(),
            profile: profile_from_proto(e.profile.as_ref()?),
        },
        Payload::AgentUpdated(e) => Event::AgentUpdated {
            agent: e.agent_id.clone(),
            profile: profile_from_proto(e.profile.as_ref()?),
        },
        Payload::AgentPresenceChanged(e) => Event::PresenceChanged {
            agent: e.agent_id.clone(),
            presence: parse_presence(&e.presence)?,
            at_ms: e.at_ms,
        },
        Payload::QueueConfigured(e) => Event::QueueConfigured {
            queue: e.queue.clone(),
            config: queue_config(e)?,
        },
        Payload::ConversationQueued(e) => Event::Enqueued {
            conversation: e.conversation_id.clone(),
            queue: e.queue.clone(),
            priority: u8::try_from(e.priority).ok()?,
            channel: e.channel.clone(),
            skills: skills_from_proto(&e.skills),
            languages: e.languages.clone(),
            at_ms: e.at_ms,
        },
        Payload::QueuePriorityChanged(e) => Event::PriorityChanged {
            conversation: e.conversation_id.clone(),
            priority: u8::try_from(e.priority).ok()?,
            at_ms: e.at_ms,
        },
        Payload::ConversationOffered(e) => Event::Offered {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            queue: e.queue.clone(),
            strategy: parse_strategy(&e.strategy)?,
            at_ms: e.at_ms,
            expires_at_ms: e.expires_at_ms,
            direct: e.direct,
            candidates: e.candidates.iter().map(verdict_from_proto).collect(),
        },
        Payload::OfferRejected(e) => Event::OfferRejected {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            at_ms: e.at_ms,
        },
        Payload::OfferExpired(e) => Event::OfferExpired {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            at_ms: e.at_ms,
        },
        Payload::OfferWithdrawn(e) => Event::OfferWithdrawn {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            reason: if e.reason == "profile" {
                WithdrawReason::Profile
            } else {
                WithdrawReason::Presence
            },
            at_ms: e.at_ms,
        },
        Payload::ConversationAssigned(e) => Event::Assigned {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            queue: e.queue.clone(),
            at_ms: e.at_ms,
            waited_ms: e.waited_ms,
        },
        Payload::ConversationReleased(e) => Event::Released {
            conversation: e.conversation_id.clone(),
            agent: e.agent_id.clone(),
            at_ms: e.at_ms,
        },
        Payload::ConversationDequeued(e) => Event::Removed {
            conversation: e.conversation_id.clone(),
            agent: non_empty(&e.agent_id),
            at_ms: e.at_ms,
        },
        Payload::ConversationTransferred(e) => Event::Transferred {
            conversation: e.conversation_id.clone(),
            from_agent: non_empty(&e.from_agent_id),
            to: if e.to_agent_id.is_empty() {
                TransferTarget::Queue {
                    queue: e.to_queue.clone(),
                    skills: skills_from_proto(&e.skills),
                }
            } else {
                TransferTarget::Agent {
                    agent: e.to_agent_id.clone(),
                }
            },
            at_ms: e.at_ms,
        },
        _ => return None,
    })
}

/// The sorted, de-duplicated set of a list, as the dispatcher keeps languages and queues.
pub fn sorted(values: &[String]) -> Vec<String> {
    values.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yy_dispatch::{Dispatcher, NewConversation};

    /// Every kind of event the dispatcher records survives the trip through the stored form, so
    /// a desk replayed from the log equals the desk that decided.
    #[test]
    fn every_dispatcher_event_round_trips_through_the_log_format() {
        let mut dispatcher = Dispatcher::new();
        let mut recorded = Vec::new();
        let mut record = |dispatcher: &mut Dispatcher, events: Vec<Event>| {
            for event in events {
                dispatcher.apply(&event);
                recorded.push(event);
            }
        };
        let profile = AgentProfile {
            skills: BTreeMap::from([("refund".to_owned(), 3)]),
            languages: BTreeSet::from(["zh".to_owned()]),
            capacity: BTreeMap::from([("web".to_owned(), 2)]),
            queues: BTreeSet::new(),
        };
        let e = dispatcher.register_agent("agt_a", profile.clone()).unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.register_agent("agt_b", AgentProfile::default()).unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher
            .configure_queue("vip", QueueConfig::new(Strategy::RoundRobin, 1000))
            .unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.set_presence("agt_a", Presence::Online, 1).unwrap();
        record(&mut dispatcher, e);
        let new = |id: &str| NewConversation {
            id: id.into(),
            queue: "vip".into(),
            priority: 5,
            channel: "web".into(),
            skills: vec![SkillRequirement::new("refund", 2)],
            languages: vec!["zh".into()],
        };
        for id in ["conv_1", "conv_2"] {
            let e = dispatcher.enqueue(new(id), 2).unwrap();
            record(&mut dispatcher, e);
        }
        let e = dispatcher.set_priority("conv_2", 8, 3).unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.dispatch(4);
        record(&mut dispatcher, e);
        let e = dispatcher.reject("conv_2", "agt_a", 5).unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.offer_expired("conv_1", "agt_a", 2000);
        record(&mut dispatcher, e);
        let e = dispatcher.dispatch(2001);
        record(&mut dispatcher, e);
        let offered: Vec<String> = dispatcher.agent("agt_a").unwrap().offered.iter().cloned().collect();
        for id in &offered {
            let e = dispatcher.accept(id, "agt_a", 2002).unwrap();
            record(&mut dispatcher, e);
        }
        let e = dispatcher
            .transfer(
                &offered[0],
                TransferTarget::Queue {
                    queue: "vip".into(),
                    skills: vec![],
                },
                2003,
            )
            .unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.update_agent("agt_a", AgentProfile::default(), 2004).unwrap();
        record(&mut dispatcher, e);
        let e = dispatcher.set_presence("agt_a", Presence::Away, 2005).unwrap();
        record(&mut dispatcher, e);
        if let Some(id) = offered.get(1) {
            let e = dispatcher.release("agt_a", id, 2006).unwrap();
            record(&mut dispatcher, e);
        }
        let e = dispatcher.remove(&offered[0], 2007);
        record(&mut dispatcher, e);

        let names = BTreeMap::new();
        let kinds: BTreeSet<&str> = recorded
            .iter()
            .map(|e| serde_json::to_value(e).unwrap()["type"].as_str().unwrap().to_owned())
            .map(|s| &*s.leak())
            .collect();
        assert!(kinds.len() >= 12, "the scenario covers most kinds: {kinds:?}");
        for event in &recorded {
            let back = from_payload(&to_payload(event, &names, None));
            assert_eq!(back.as_ref(), Some(event));
        }
        let replayed = Dispatcher::replay(
            recorded
                .iter()
                .map(|e| from_payload(&to_payload(e, &names, None)).unwrap())
                .collect::<Vec<_>>()
                .iter(),
        );
        assert_eq!(replayed, dispatcher);
    }
}
