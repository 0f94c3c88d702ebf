//! The conversation context's events (conversations and contacts) as public events.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use yy_eventlog::Payload;
use yy_proto::conversation::v1::{ChannelIdentity, ConversationStatus, Priority, RichContent};

use crate::{
    CONTACT_CREATED, CONTACT_MERGED, CONTACT_UPDATED, CONVERSATION_CREATED, CONVERSATION_STATUS_CHANGED,
    CONVERSATION_UPDATED, CSAT_SUBMITTED, MESSAGE_CREATED,
};

/// The public type and data of one stored event of aggregate `aggregate_id`; `None` for events
/// without a public counterpart.
pub(crate) fn map(aggregate_id: &str, payload: &Payload) -> Option<(&'static str, Value)> {
    let mapped = match payload {
        Payload::ConversationOpened(e) => (
            CONVERSATION_CREATED,
            json!({
                "conversation_id": aggregate_id,
                "contact_id": e.contact_id,
                "channel": e.channel,
                "subject": optional(&e.subject),
                "priority": priority(e.priority),
                "tags": e.tags,
                "attributes": sorted(&e.attributes),
            }),
        ),
        Payload::MessagePosted(e) => (
            MESSAGE_CREATED,
            json!({
                "id": e.message_id,
                "conversation_id": aggregate_id,
                "role": e.role,
                "text": e.text,
                "content": content(e.content.as_ref()),
                "author_id": optional(&e.author_id),
                "position": e.position,
            }),
        ),
        Payload::ConversationStatusChanged(e) => (
            CONVERSATION_STATUS_CHANGED,
            json!({
                "conversation_id": aggregate_id,
                "from": status(e.from),
                "to": status(e.to),
                "reason": optional(&e.reason),
                "agent_id": optional(&e.agent_id),
            }),
        ),
        Payload::ConversationPriorityChanged(e) => (
            CONVERSATION_UPDATED,
            changed(
                "conversation_id",
                aggregate_id,
                &["priority"],
                [("priority", json!(priority(e.priority)))],
            ),
        ),
        Payload::ConversationTagsChanged(e) => (
            CONVERSATION_UPDATED,
            changed(
                "conversation_id",
                aggregate_id,
                &["tags"],
                [("tags_added", json!(e.added)), ("tags_removed", json!(e.removed))],
            ),
        ),
        Payload::ConversationAttributesChanged(e) => (
            CONVERSATION_UPDATED,
            changed(
                "conversation_id",
                aggregate_id,
                &["attributes"],
                [
                    ("attributes_set", json!(sorted(&e.set))),
                    ("attributes_removed", json!(e.removed)),
                ],
            ),
        ),
        Payload::CsatSubmitted(e) => (
            CSAT_SUBMITTED,
            json!({
                "conversation_id": aggregate_id,
                "score": e.score,
                "comment": optional(&e.comment),
            }),
        ),
        Payload::ContactCreated(e) => (
            CONTACT_CREATED,
            json!({
                "contact_id": aggregate_id,
                "name": optional(&e.name),
                "identity": e.identity.as_ref().map(identity),
                "attributes": sorted(&e.attributes),
            }),
        ),
        Payload::ContactIdentityLinked(e) => (
            CONTACT_UPDATED,
            changed(
                "contact_id",
                aggregate_id,
                &["identities"],
                [(
                    "identities_added",
                    json!(e.identity.iter().map(identity).collect::<Vec<_>>()),
                )],
            ),
        ),
        Payload::ContactUpdated(e) => {
            // An empty name leaves the name as it was, so it is not a change.
            let mut what = Vec::new();
            let mut fields = Vec::new();
            if !e.name.is_empty() {
                what.push("name");
                fields.push(("name", json!(e.name)));
            }
            if !e.attributes.is_empty() {
                what.push("attributes");
                fields.push(("attributes_set", json!(sorted(&e.attributes))));
            }
            if what.is_empty() {
                return None;
            }
            (CONTACT_UPDATED, changed("contact_id", aggregate_id, &what, fields))
        }
        Payload::ContactMerged(e) => (
            CONTACT_MERGED,
            json!({
                "source_contact_id": aggregate_id,
                "target_contact_id": e.target_contact_id,
            }),
        ),
        // Other contexts' events are not public (IAM events) or not published by this catalogue.
        _ => return None,
    };
    Some(mapped)
}

/// `{<id_key>: aggregate_id, "changed": what, ...fields}`.
fn changed<'a>(
    id_key: &str,
    aggregate_id: &str,
    what: &[&str],
    fields: impl IntoIterator<Item = (&'a str, Value)>,
) -> Value {
    let mut data = Map::new();
    data.insert(id_key.into(), json!(aggregate_id));
    data.insert("changed".into(), json!(what));
    for (key, value) in fields {
        data.insert(key.into(), value);
    }
    Value::Object(data)
}

/// An optional text: `null` when not given.
fn optional(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Map keys in a stable order, so the same event always serializes to the same bytes.
fn sorted(map: &HashMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A priority's public name; an unset priority is the default, normal.
fn priority(value: i32) -> &'static str {
    match Priority::try_from(value) {
        Ok(Priority::Low) => "low",
        Ok(Priority::High) => "high",
        Ok(Priority::Urgent) => "urgent",
        Ok(Priority::Normal | Priority::Unspecified) | Err(_) => "normal",
    }
}

/// A status's public name; `None` (JSON `null`) for a value that is not a status.
fn status(value: i32) -> Option<&'static str> {
    match ConversationStatus::try_from(value).ok()? {
        ConversationStatus::Bot => Some("bot"),
        ConversationStatus::Queued => Some("queued"),
        ConversationStatus::Assigned => Some("assigned"),
        ConversationStatus::Resolved => Some("resolved"),
        ConversationStatus::Closed => Some("closed"),
        ConversationStatus::Unspecified => None,
    }
}

fn identity(identity: &ChannelIdentity) -> Value {
    json!({ "channel": identity.channel, "external_id": identity.external_id })
}

fn content(content: Option<&RichContent>) -> Value {
    let empty = RichContent::default();
    let content = content.unwrap_or(&empty);
    json!({
        "quick_replies": content.quick_replies.iter().map(|q| json!({
            "title": q.title,
            // What tapping sends back; the title unless a payload was given.
            "payload": if q.payload.is_empty() { &q.title } else { &q.payload },
        })).collect::<Vec<_>>(),
        "cards": content.cards.iter().map(|c| json!({
            "title": c.title,
            "subtitle": optional(&c.subtitle),
            "image_url": optional(&c.image_url),
            "url": optional(&c.url),
        })).collect::<Vec<_>>(),
        "attachments": content.attachments.iter().map(|a| json!({
            "url": a.url,
            "content_type": optional(&a.content_type),
            "name": optional(&a.name),
            // 0 means the size is not known.
            "size_bytes": (a.size_bytes > 0).then_some(a.size_bytes),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use serde_json::json;
    use yy_eventlog::{Commit, EventEnvelope, Payload, Record};
    use yy_proto::conversation::v1::{
        Attachment, Card, ChannelIdentity, ContactCreated, ContactIdentityLinked, ContactMerged, ContactUpdated,
        ConversationAttributesChanged, ConversationOpened, ConversationPriorityChanged, ConversationStatus,
        ConversationStatusChanged, ConversationTagsChanged, CsatSubmitted, MessagePosted, Priority, QuickReply,
        RichContent,
    };
    use yy_proto::iam::v1::TenantCreated;

    use crate::{EVENT_TYPES, PublicEvent, public_events};

    fn record(aggregate_id: &str, payloads: Vec<Payload>) -> Record {
        let events = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| EventEnvelope {
                event_id: format!("01890a5d-ac96-774b-bcce-b302099a80{i:02}"),
                tenant_id: "ten_1".into(),
                aggregate_type: "conversation".into(),
                aggregate_id: aggregate_id.into(),
                occurred_at: Some(Timestamp {
                    seconds: 1_738_315_800,
                    nanos: 125_000_000,
                }),
                schema_version: 1,
                payload: Some(payload),
                ..Default::default()
            })
            .collect();
        Record {
            partition: 2,
            sequence: 7,
            tenant_id: "ten_1".into(),
            aggregate_id: aggregate_id.into(),
            commit: Commit {
                command_id: "cmd_1".into(),
                events,
            },
            trace: None,
        }
    }

    fn one(aggregate_id: &str, payload: Payload) -> PublicEvent {
        let mut events = public_events(&record(aggregate_id, vec![payload]));
        assert_eq!(events.len(), 1, "{events:?}");
        let event = events.remove(0);
        assert!(EVENT_TYPES.contains(&event.event_type.as_str()));
        crate::schema::assert_has_required_keys(&event);
        event
    }

    fn identity(channel: &str, external_id: &str) -> ChannelIdentity {
        ChannelIdentity {
            channel: channel.into(),
            external_id: external_id.into(),
        }
    }

    #[test]
    fn the_envelope_carries_id_type_tenant_aggregate_and_time() {
        let event = one(
            "conv_9",
            Payload::CsatSubmitted(CsatSubmitted {
                score: 5,
                comment: String::new(),
            }),
        );
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(
            json,
            json!({
                "id": "01890a5d-ac96-774b-bcce-b302099a8000",
                "type": "csat.submitted",
                "tenant_id": "ten_1",
                "aggregate_id": "conv_9",
                "occurred_at": "2025-01-31T09:30:00.125Z",
                "data": { "conversation_id": "conv_9", "score": 5, "comment": null },
            })
        );
    }

    #[test]
    fn conversation_opened_is_conversation_created() {
        let event = one(
            "conv_9",
            Payload::ConversationOpened(ConversationOpened {
                contact_id: "ctc_1".into(),
                channel: "web".into(),
                subject: "Order 42".into(),
                priority: Priority::High as i32,
                tags: vec!["vip".into()],
                attributes: [("plan".to_owned(), "pro".to_owned())].into(),
            }),
        );
        assert_eq!(event.event_type, "conversation.created");
        assert_eq!(
            event.data,
            json!({
                "conversation_id": "conv_9",
                "contact_id": "ctc_1",
                "channel": "web",
                "subject": "Order 42",
                "priority": "high",
                "tags": ["vip"],
                "attributes": { "plan": "pro" },
            })
        );
        let unset = one(
            "conv_9",
            Payload::ConversationOpened(ConversationOpened {
                contact_id: "ctc_1".into(),
                channel: "api".into(),
                ..Default::default()
            }),
        );
        assert_eq!(unset.data["subject"], json!(null));
        assert_eq!(unset.data["priority"], "normal");
        assert_eq!(unset.data["tags"], json!([]));
        assert_eq!(unset.data["attributes"], json!({}));
    }

    #[test]
    fn message_posted_is_message_created_with_its_rich_content() {
        let event = one(
            "conv_9",
            Payload::MessagePosted(MessagePosted {
                message_id: "msg_3".into(),
                role: "agent".into(),
                text: "Here you go".into(),
                content: Some(RichContent {
                    quick_replies: vec![
                        QuickReply {
                            title: "Yes".into(),
                            payload: String::new(),
                        },
                        QuickReply {
                            title: "No".into(),
                            payload: "answer_no".into(),
                        },
                    ],
                    cards: vec![Card {
                        title: "Order 42".into(),
                        subtitle: "Shipped".into(),
                        image_url: String::new(),
                        url: "https://shop.example/o/42".into(),
                    }],
                    attachments: vec![Attachment {
                        url: "https://cdn.example/invoice.pdf".into(),
                        content_type: "application/pdf".into(),
                        name: "invoice.pdf".into(),
                        size_bytes: 2048,
                    }],
                }),
                author_id: "agt_7".into(),
                position: 3,
            }),
        );
        assert_eq!(event.event_type, "message.created");
        assert_eq!(
            event.data,
            json!({
                "id": "msg_3",
                "conversation_id": "conv_9",
                "role": "agent",
                "text": "Here you go",
                "content": {
                    "quick_replies": [
                        { "title": "Yes", "payload": "Yes" },
                        { "title": "No", "payload": "answer_no" },
                    ],
                    "cards": [{
                        "title": "Order 42",
                        "subtitle": "Shipped",
                        "image_url": null,
                        "url": "https://shop.example/o/42",
                    }],
                    "attachments": [{
                        "url": "https://cdn.example/invoice.pdf",
                        "content_type": "application/pdf",
                        "name": "invoice.pdf",
                        "size_bytes": 2048,
                    }],
                },
                "author_id": "agt_7",
                "position": 3,
            })
        );

        let plain = one(
            "conv_9",
            Payload::MessagePosted(MessagePosted {
                message_id: "msg_1".into(),
                role: "customer".into(),
                text: "Hi".into(),
                position: 1,
                ..Default::default()
            }),
        );
        assert_eq!(
            plain.data["content"],
            json!({ "quick_replies": [], "cards": [], "attachments": [] })
        );
        assert_eq!(plain.data["author_id"], json!(null));
    }

    #[test]
    fn status_changes_name_statuses_in_lowercase() {
        let event = one(
            "conv_9",
            Payload::ConversationStatusChanged(ConversationStatusChanged {
                from: ConversationStatus::Queued as i32,
                to: ConversationStatus::Assigned as i32,
                reason: String::new(),
                agent_id: "agt_7".into(),
            }),
        );
        assert_eq!(event.event_type, "conversation.status_changed");
        assert_eq!(
            event.data,
            json!({ "conversation_id": "conv_9", "from": "queued", "to": "assigned", "reason": null, "agent_id": "agt_7" })
        );
        let names = [
            (ConversationStatus::Bot, "bot"),
            (ConversationStatus::Queued, "queued"),
            (ConversationStatus::Assigned, "assigned"),
            (ConversationStatus::Resolved, "resolved"),
            (ConversationStatus::Closed, "closed"),
        ];
        for (status, name) in names {
            let event = one(
                "conv_9",
                Payload::ConversationStatusChanged(ConversationStatusChanged {
                    from: ConversationStatus::Resolved as i32,
                    to: status as i32,
                    reason: "customer wrote again".into(),
                    agent_id: String::new(),
                }),
            );
            assert_eq!(event.data["to"], name);
            assert_eq!(event.data["reason"], "customer wrote again");
            assert_eq!(event.data["agent_id"], json!(null));
        }
    }

    #[test]
    fn priority_tags_and_attribute_changes_are_conversation_updated_saying_what_changed() {
        for (priority, name) in [
            (Priority::Low, "low"),
            (Priority::Normal, "normal"),
            (Priority::High, "high"),
            (Priority::Urgent, "urgent"),
        ] {
            let event = one(
                "conv_9",
                Payload::ConversationPriorityChanged(ConversationPriorityChanged {
                    priority: priority as i32,
                }),
            );
            assert_eq!(event.event_type, "conversation.updated");
            assert_eq!(
                event.data,
                json!({ "conversation_id": "conv_9", "changed": ["priority"], "priority": name })
            );
        }

        let tags = one(
            "conv_9",
            Payload::ConversationTagsChanged(ConversationTagsChanged {
                added: vec!["refund".into()],
                removed: vec!["new".into()],
            }),
        );
        assert_eq!(tags.event_type, "conversation.updated");
        assert_eq!(
            tags.data,
            json!({ "conversation_id": "conv_9", "changed": ["tags"], "tags_added": ["refund"], "tags_removed": ["new"] })
        );

        let attributes = one(
            "conv_9",
            Payload::ConversationAttributesChanged(ConversationAttributesChanged {
                set: [("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())].into(),
                removed: vec!["c".into()],
            }),
        );
        assert_eq!(attributes.event_type, "conversation.updated");
        assert_eq!(
            attributes.data,
            json!({
                "conversation_id": "conv_9",
                "changed": ["attributes"],
                "attributes_set": { "a": "1", "b": "2" },
                "attributes_removed": ["c"],
            })
        );
        // Stable bytes: map keys come out sorted.
        let text = serde_json::to_string(&attributes.data).expect("json");
        assert!(text.find("\"a\"") < text.find("\"b\""), "{text}");
    }

    #[test]
    fn csat_is_csat_submitted() {
        let event = one(
            "conv_9",
            Payload::CsatSubmitted(CsatSubmitted {
                score: 2,
                comment: "slow".into(),
            }),
        );
        assert_eq!(event.event_type, "csat.submitted");
        assert_eq!(
            event.data,
            json!({ "conversation_id": "conv_9", "score": 2, "comment": "slow" })
        );
    }

    #[test]
    fn contact_created_carries_its_identity() {
        let event = one(
            "ctc_1",
            Payload::ContactCreated(ContactCreated {
                identity: Some(identity("email", "ana@example.com")),
                name: "Ana".into(),
                attributes: [("tier".to_owned(), "gold".to_owned())].into(),
            }),
        );
        assert_eq!(event.event_type, "contact.created");
        assert_eq!(event.aggregate_id, "ctc_1");
        assert_eq!(
            event.data,
            json!({
                "contact_id": "ctc_1",
                "name": "Ana",
                "identity": { "channel": "email", "external_id": "ana@example.com" },
                "attributes": { "tier": "gold" },
            })
        );
    }

    #[test]
    fn contact_changes_are_contact_updated_saying_what_changed() {
        let updated = one(
            "ctc_1",
            Payload::ContactUpdated(ContactUpdated {
                name: "Ana Lima".into(),
                attributes: [("tier".to_owned(), "platinum".to_owned())].into(),
            }),
        );
        assert_eq!(updated.event_type, "contact.updated");
        assert_eq!(
            updated.data,
            json!({
                "contact_id": "ctc_1",
                "changed": ["name", "attributes"],
                "name": "Ana Lima",
                "attributes_set": { "tier": "platinum" },
            })
        );
        let attributes_only = one(
            "ctc_1",
            Payload::ContactUpdated(ContactUpdated {
                name: String::new(),
                attributes: [("tier".to_owned(), "gold".to_owned())].into(),
            }),
        );
        assert_eq!(attributes_only.data["changed"], json!(["attributes"]));
        assert!(attributes_only.data.get("name").is_none());
        let nothing = record("ctc_1", vec![Payload::ContactUpdated(ContactUpdated::default())]);
        assert!(public_events(&nothing).is_empty());

        let linked = one(
            "ctc_1",
            Payload::ContactIdentityLinked(ContactIdentityLinked {
                identity: Some(identity("whatsapp", "+351910000000")),
            }),
        );
        assert_eq!(linked.event_type, "contact.updated");
        assert_eq!(
            linked.data,
            json!({
                "contact_id": "ctc_1",
                "changed": ["identities"],
                "identities_added": [{ "channel": "whatsapp", "external_id": "+351910000000" }],
            })
        );
    }

    #[test]
    fn the_merged_contact_reports_contact_merged() {
        let event = one(
            "ctc_2",
            Payload::ContactMerged(ContactMerged {
                target_contact_id: "ctc_1".into(),
            }),
        );
        assert_eq!(event.event_type, "contact.merged");
        assert_eq!(
            event.data,
            json!({ "source_contact_id": "ctc_2", "target_contact_id": "ctc_1" })
        );
    }

    #[test]
    fn events_without_a_public_counterpart_map_to_nothing_and_order_is_kept() {
        let record = record(
            "conv_9",
            vec![
                Payload::TenantCreated(TenantCreated::default()),
                Payload::MessagePosted(MessagePosted {
                    message_id: "msg_1".into(),
                    role: "customer".into(),
                    text: "again".into(),
                    position: 4,
                    ..Default::default()
                }),
                Payload::ConversationStatusChanged(ConversationStatusChanged {
                    from: ConversationStatus::Resolved as i32,
                    to: ConversationStatus::Bot as i32,
                    reason: "customer wrote again".into(),
                    agent_id: String::new(),
                }),
            ],
        );
        let events = public_events(&record);
        let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["message.created", "conversation.status_changed"]);
        assert_eq!(events[0].id, record.commit.events[1].event_id);
        assert_eq!(events[1].id, record.commit.events[2].event_id);

        let mut unknown = record.clone();
        unknown.commit.events[1].payload = None;
        assert_eq!(public_events(&unknown).len(), 1);
    }
}
