//! The ticket context's events as public events: a ticket's creation and its changes, wherever
//! they were made (here, or in the external ticket system a connector keeps in step).

use serde_json::{Map, Value, json};
use yy_eventlog::Payload;
use yy_proto::ticket::v1::{Actor, Requester};

use crate::{TICKET_CREATED, TICKET_UPDATED};

/// The public type and data of one stored ticket event of ticket `aggregate_id`; comments, links
/// and the connectors' own bookkeeping (syncs, settings) are not public events.
pub(crate) fn map(aggregate_id: &str, payload: &Payload) -> Option<(&'static str, Value)> {
    match payload {
        Payload::TicketCreated(e) => Some((
            TICKET_CREATED,
            json!({
                "ticket_id": aggregate_id,
                "subject": e.subject,
                "description": e.description,
                "status": "new",
                "priority": e.priority,
                "requester": requester(e.requester.as_ref()),
                "assignee_id": optional(&e.assignee_id),
                "group": optional(&e.group),
                "tags": e.tags,
                "custom_fields": e.custom_fields,
                "due_at": e.due_at.map(|t| t.to_string()),
                "conversation_id": optional(&e.conversation_id),
                "actor": actor(e.actor.as_ref()),
                "origin": optional(&e.origin),
            }),
        )),
        Payload::TicketUpdated(e) => {
            // Like conversation.updated: `changed` lists what changed, and only those keys (with
            // their companions) are present.
            let mut data = Map::new();
            let mut changed: Vec<&str> = Vec::new();
            data.insert("ticket_id".into(), json!(aggregate_id));
            let texts = [
                ("subject", &e.subject),
                ("description", &e.description),
                ("priority", &e.priority),
                ("status", &e.status),
            ];
            for (key, value) in texts {
                if let Some(value) = value {
                    changed.push(key);
                    data.insert(key.into(), json!(value));
                }
            }
            if e.status.is_some() {
                data.insert("previous_status".into(), json!(e.previous_status));
            }
            for (key, value) in [("assignee_id", &e.assignee_id), ("group", &e.group)] {
                if let Some(value) = value {
                    changed.push(key);
                    data.insert(key.into(), json!(optional(value)));
                }
            }
            if !e.tags_added.is_empty() || !e.tags_removed.is_empty() {
                changed.push("tags");
                data.insert("tags_added".into(), json!(e.tags_added));
                data.insert("tags_removed".into(), json!(e.tags_removed));
            }
            if !e.custom_fields_set.is_empty() || !e.custom_fields_removed.is_empty() {
                changed.push("custom_fields");
                data.insert("custom_fields_set".into(), json!(e.custom_fields_set));
                data.insert("custom_fields_removed".into(), json!(e.custom_fields_removed));
            }
            if let Some(due) = e.due_at {
                changed.push("due_at");
                data.insert("due_at".into(), json!(due.to_string()));
            }
            data.insert("changed".into(), json!(changed));
            data.insert("actor".into(), actor(e.actor.as_ref()));
            data.insert("origin".into(), json!(optional(&e.origin)));
            Some((TICKET_UPDATED, Value::Object(data)))
        }
        _ => None,
    }
}

fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn requester(requester: Option<&Requester>) -> Value {
    let r = requester.cloned().unwrap_or_default();
    json!({
        "contact_id": optional(&r.contact_id),
        "name": optional(&r.name),
        "email": optional(&r.email),
    })
}

fn actor(actor: Option<&Actor>) -> Value {
    let a = actor.cloned().unwrap_or_default();
    json!({ "kind": optional(&a.kind), "id": optional(&a.id) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yy_eventlog::{Commit, EventEnvelope, Payload, Record};
    use yy_proto::ticket::v1::{Actor, Requester, TicketCommentAdded, TicketCreated, TicketUpdated};

    use crate::{EVENT_TYPES, PublicEvent, public_events};

    fn one(payload: Payload) -> Option<PublicEvent> {
        let record = Record {
            partition: 0,
            sequence: 7,
            tenant_id: "ten_1".into(),
            aggregate_id: "tkt_42".into(),
            commit: Commit {
                command_id: "cmd".into(),
                events: vec![EventEnvelope {
                    event_id: "01890a5d-ac96-774b-bcce-b302099a8057".into(),
                    tenant_id: "ten_1".into(),
                    aggregate_type: "ticket".into(),
                    aggregate_id: "tkt_42".into(),
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
        assert_eq!(
            (event.tenant_id.as_str(), event.aggregate_id.as_str()),
            ("ten_1", "tkt_42")
        );
        crate::schema::assert_has_required_keys(&event);
        Some(event)
    }

    #[test]
    fn a_created_ticket_is_public_with_its_requester_and_origin() {
        let event = one(Payload::TicketCreated(TicketCreated {
            subject: "Parcel lost".into(),
            description: "Order A-1024 never arrived".into(),
            requester: Some(Requester {
                contact_id: "ctc_1".into(),
                name: "Ann".into(),
                email: String::new(),
            }),
            priority: "high".into(),
            tags: vec!["shipping".into()],
            conversation_id: "conv_9".into(),
            actor: Some(Actor {
                kind: "agent".into(),
                id: "agt_ann".into(),
            }),
            ..Default::default()
        }))
        .expect("public");
        assert_eq!(event.event_type, "ticket.created");
        assert_eq!(event.data["ticket_id"], "tkt_42");
        assert_eq!(event.data["status"], "new");
        assert_eq!(
            event.data["requester"],
            json!({"contact_id": "ctc_1", "name": "Ann", "email": null})
        );
        assert_eq!(event.data["conversation_id"], "conv_9");
        assert_eq!(event.data["actor"], json!({"kind": "agent", "id": "agt_ann"}));
        assert_eq!(event.data["origin"], json!(null));
        assert_eq!(event.data["assignee_id"], json!(null));
    }

    #[test]
    fn an_update_lists_what_changed_and_where_it_came_from() {
        let event = one(Payload::TicketUpdated(TicketUpdated {
            status: Some("solved".into()),
            previous_status: "open".into(),
            assignee_id: Some(String::new()),
            tags_added: vec!["vip".into()],
            origin: "cnx_zendesk".into(),
            actor: Some(Actor {
                kind: "connector".into(),
                id: "cnx_zendesk".into(),
            }),
            ..Default::default()
        }))
        .expect("public");
        assert_eq!(event.event_type, "ticket.updated");
        assert_eq!(event.data["changed"], json!(["status", "assignee_id", "tags"]));
        assert_eq!(event.data["status"], "solved");
        assert_eq!(event.data["previous_status"], "open");
        assert_eq!(event.data["assignee_id"], json!(null), "unassigned");
        assert_eq!(event.data["tags_added"], json!(["vip"]));
        assert_eq!(event.data["origin"], "cnx_zendesk");
        assert!(event.data.get("subject").is_none(), "only what changed: {}", event.data);
    }

    #[test]
    fn comments_are_not_public_events() {
        assert!(one(Payload::TicketCommentAdded(TicketCommentAdded::default())).is_none());
    }
}
