//! The routing context's events as public events. Routing keeps one aggregate per tenant (the
//! desk), which is no use to a client: each public event names the conversation or the agent it
//! is about as its `aggregate_id` instead.

use serde_json::{Value, json};
use yy_eventlog::Payload;
use yy_proto::routing::v1::{SkillRequirement, Understanding};

use crate::{AGENT_STATUS_CHANGED, CONVERSATION_ASSIGNED, CONVERSATION_HANDOFF, ROUTING_DECIDED};

/// The public type, subject aggregate and data of one stored routing event; `None` for events
/// without a public counterpart (offers, rules, queue settings: the desk's own bookkeeping).
pub(crate) fn map(payload: &Payload) -> Option<(&'static str, String, Value)> {
    let mapped = match payload {
        Payload::MessageRouted(e) => (
            ROUTING_DECIDED,
            e.conversation_id.clone(),
            json!({
                "conversation_id": e.conversation_id,
                "message_id": e.message_id,
                "route": e.route,
                "queue": optional(&e.queue),
                "priority": (e.route == "queue").then_some(e.priority),
                "skills": skills(&e.skills),
                "rule": e.rule_name,
                "rules_version": e.rules_version,
                "tags_added": e.add_tags,
                "escalate": e.escalate,
                "understanding": understanding(e.understanding.as_ref()),
            }),
        ),
        Payload::ConversationQueued(e) => (
            CONVERSATION_HANDOFF,
            e.conversation_id.clone(),
            json!({
                "conversation_id": e.conversation_id,
                "queue": e.queue,
                "priority": e.priority,
                "reason": e.reason,
                "channel": e.channel,
                "skills": skills(&e.skills),
                "languages": e.languages,
                "understanding": understanding(e.understanding.as_ref()),
            }),
        ),
        Payload::ConversationAssigned(e) => (
            CONVERSATION_ASSIGNED,
            e.conversation_id.clone(),
            json!({
                "conversation_id": e.conversation_id,
                "agent_id": e.agent_id,
                "queue": optional(&e.queue),
                "waited_ms": e.waited_ms,
            }),
        ),
        Payload::AgentPresenceChanged(e) => (
            AGENT_STATUS_CHANGED,
            e.agent_id.clone(),
            json!({ "agent_id": e.agent_id, "status": e.presence }),
        ),
        _ => return None,
    };
    Some(mapped)
}

fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn skills(skills: &[SkillRequirement]) -> Vec<Value> {
    skills
        .iter()
        .map(|s| json!({ "name": s.name, "min_level": s.min_level }))
        .collect()
}

/// What the language understanding made of the message; `null` when the event carries none.
fn understanding(understanding: Option<&Understanding>) -> Value {
    let Some(u) = understanding else {
        return Value::Null;
    };
    let top = u.intents.first();
    json!({
        "language": u.language,
        "intent": top.map(|i| i.name.as_str()),
        "confidence": top.map(|i| f64::from(i.confidence)),
        "fallback": u.fallback,
        "sentiment": f64::from(u.sentiment),
        "sentiment_label": u.sentiment_label,
        "entities": u.entities,
    })
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use serde_json::json;
    use yy_eventlog::{Commit, EventEnvelope, Payload, Record};
    use yy_proto::routing::v1::{
        AgentPresenceChanged, ConversationAssigned, ConversationOffered, ConversationQueued, IntentScore,
        MessageRouted, SkillRequirement, Understanding,
    };

    use crate::{EVENT_TYPES, PublicEvent, public_events};

    fn one(payload: Payload) -> Option<PublicEvent> {
        let record = Record {
            partition: 0,
            sequence: 3,
            tenant_id: "ten_1".into(),
            aggregate_id: "desk_ten_1".into(),
            commit: Commit {
                command_id: "cmd".into(),
                events: vec![EventEnvelope {
                    event_id: "01890a5d-ac96-774b-bcce-b302099a8057".into(),
                    tenant_id: "ten_1".into(),
                    aggregate_type: "desk".into(),
                    aggregate_id: "desk_ten_1".into(),
                    occurred_at: Some(Timestamp {
                        seconds: 1_738_315_800,
                        nanos: 0,
                    }),
                    payload: Some(payload),
                    ..Default::default()
                }],
            },
            trace: None,
        };
        let mut events = public_events(&record);
        assert!(events.len() <= 1);
        let event = events.pop()?;
        assert!(EVENT_TYPES.contains(&event.event_type.as_str()));
        assert_eq!(event.tenant_id, "ten_1");
        crate::schema::assert_has_required_keys(&event);
        Some(event)
    }

    fn understood() -> Understanding {
        Understanding {
            language: "zh".into(),
            intents: vec![IntentScore {
                name: "order_status".into(),
                confidence: 0.5,
            }],
            fallback: false,
            ambiguous: false,
            sentiment: -0.75,
            sentiment_label: "negative".into(),
            entities: vec!["order_number:A-1024".into()],
        }
    }

    #[test]
    fn message_routed_is_routing_decided_about_the_conversation() {
        let event = one(Payload::MessageRouted(MessageRouted {
            conversation_id: "conv_9".into(),
            message_id: "msg_3".into(),
            message_position: 3,
            understanding: Some(understood()),
            rules_version: 2,
            rule_name: "vip-angry".into(),
            route: "queue".into(),
            queue: "vip".into(),
            priority: 8,
            skills: vec![SkillRequirement {
                name: "refunds".into(),
                min_level: 2,
            }],
            add_tags: vec!["angry".into()],
            escalate: true,
            explanation_json: "{}".into(),
            low_confidence_streak: 0,
            state: "bot".into(),
        }))
        .expect("public");
        assert_eq!(event.event_type, "routing.decided");
        assert_eq!(event.aggregate_id, "conv_9");
        assert_eq!(
            event.data,
            json!({
                "conversation_id": "conv_9",
                "message_id": "msg_3",
                "route": "queue",
                "queue": "vip",
                "priority": 8,
                "skills": [{ "name": "refunds", "min_level": 2 }],
                "rule": "vip-angry",
                "rules_version": 2,
                "tags_added": ["angry"],
                "escalate": true,
                "understanding": {
                    "language": "zh",
                    "intent": "order_status",
                    "confidence": 0.5,
                    "fallback": false,
                    "sentiment": -0.75,
                    "sentiment_label": "negative",
                    "entities": ["order_number:A-1024"],
                },
            })
        );
        let to_bot = one(Payload::MessageRouted(MessageRouted {
            conversation_id: "conv_9".into(),
            route: "bot".into(),
            priority: 5,
            ..Default::default()
        }))
        .expect("public");
        assert_eq!(to_bot.data["queue"], json!(null));
        assert_eq!(to_bot.data["priority"], json!(null));
        assert_eq!(to_bot.data["understanding"], json!(null));
    }

    #[test]
    fn queued_is_conversation_handoff() {
        let event = one(Payload::ConversationQueued(ConversationQueued {
            conversation_id: "conv_9".into(),
            queue: "general".into(),
            priority: 5,
            channel: "web".into(),
            languages: vec!["zh".into()],
            at_ms: 1,
            reason: "customer_request".into(),
            understanding: Some(understood()),
            ..Default::default()
        }))
        .expect("public");
        assert_eq!(event.event_type, "conversation.handoff");
        assert_eq!(event.aggregate_id, "conv_9");
        assert_eq!(event.data["queue"], "general");
        assert_eq!(event.data["priority"], 5);
        assert_eq!(event.data["reason"], "customer_request");
        assert_eq!(event.data["channel"], "web");
        assert_eq!(event.data["skills"], json!([]));
        assert_eq!(event.data["languages"], json!(["zh"]));
        assert_eq!(event.data["understanding"]["intent"], "order_status");
    }

    #[test]
    fn assigned_and_presence_name_their_subjects() {
        let assigned = one(Payload::ConversationAssigned(ConversationAssigned {
            conversation_id: "conv_9".into(),
            agent_id: "agt_1".into(),
            queue: "general".into(),
            at_ms: 5,
            waited_ms: 1500,
        }))
        .expect("public");
        assert_eq!(assigned.event_type, "conversation.assigned");
        assert_eq!(
            assigned.data,
            json!({ "conversation_id": "conv_9", "agent_id": "agt_1", "queue": "general", "waited_ms": 1500 })
        );
        let presence = one(Payload::AgentPresenceChanged(AgentPresenceChanged {
            agent_id: "agt_1".into(),
            presence: "away".into(),
            at_ms: 5,
        }))
        .expect("public");
        assert_eq!(presence.event_type, "agent.status_changed");
        assert_eq!(presence.aggregate_id, "agt_1");
        assert_eq!(presence.data, json!({ "agent_id": "agt_1", "status": "away" }));
    }

    #[test]
    fn the_desks_bookkeeping_is_not_public() {
        assert!(one(Payload::ConversationOffered(ConversationOffered::default())).is_none());
    }
}
