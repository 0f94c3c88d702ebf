//! The catalogue as data: each public event type's version, meaning and JSON Schema
//! (draft 2020-12), for the webhook API's event-type listing and `docs/event-schemas.json`.
//!
//! A type's version changes only if its `data` changes incompatibly, which the catalogue's rules
//! forbid within a type (fields are only added); a new shape would be a new version served beside
//! the old one.

use serde_json::{Map, Value, json};

use crate::*;

/// One public event type as documented.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeInfo {
    /// Such as `message.created`.
    pub name: &'static str,
    /// The version of its payload schema.
    pub version: u32,
    /// What it means, in one sentence.
    pub description: &'static str,
    /// The JSON Schema of the whole event: the envelope, with `type` fixed and `data` described.
    pub schema: Value,
}

fn string() -> Value {
    json!({ "type": "string" })
}
fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}
fn integer() -> Value {
    json!({ "type": "integer" })
}
fn boolean() -> Value {
    json!({ "type": "boolean" })
}
fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}
fn string_map() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" } })
}
fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}
fn nullable_one_of(values: &[&str]) -> Value {
    let mut values: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    values.push(Value::Null);
    json!({ "enum": values })
}
fn skills() -> Value {
    object(&[("name", string()), ("min_level", integer())], &[]).pipe(|item| json!({ "type": "array", "items": item }))
}
fn understanding() -> Value {
    json!({
        "type": ["object", "null"],
        "required": ["language", "intent", "confidence", "fallback", "sentiment", "sentiment_label", "entities"],
        "properties": {
            "language": one_of(&["zh", "en", "mixed", "unknown"]),
            "intent": nullable_string(),
            "confidence": { "type": ["number", "null"] },
            "fallback": boolean(),
            "sentiment": { "type": "number", "minimum": -1, "maximum": 1 },
            "sentiment_label": one_of(&["negative", "neutral", "positive"]),
            "entities": strings(),
        },
    })
}

const STATUSES: &[&str] = &["bot", "queued", "assigned", "resolved", "closed"];
const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

/// An object whose `required` keys are always present and whose `optional` keys may be.
fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    for (key, schema) in required.iter().chain(optional) {
        properties.insert((*key).to_owned(), schema.clone());
    }
    json!({
        "type": "object",
        "required": required.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "properties": properties,
    })
}

const TICKET_PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
const TICKET_STATUSES: &[&str] = &["new", "open", "pending", "solved", "closed"];

fn ticket_requester() -> Value {
    object(
        &[
            ("contact_id", nullable_string()),
            ("name", nullable_string()),
            ("email", nullable_string()),
        ],
        &[],
    )
}

fn ticket_actor() -> Value {
    object(&[("kind", nullable_string()), ("id", nullable_string())], &[])
}

fn data_schema(name: &str) -> Value {
    let identity = object(&[("channel", string()), ("external_id", string())], &[]);
    match name {
        CONVERSATION_CREATED => object(
            &[
                ("conversation_id", string()),
                ("contact_id", string()),
                ("channel", string()),
                ("subject", nullable_string()),
                ("priority", one_of(PRIORITIES)),
                ("tags", strings()),
                ("attributes", string_map()),
            ],
            &[],
        ),
        MESSAGE_CREATED => {
            let quick_reply = object(&[("title", string()), ("payload", string())], &[]);
            let card = object(
                &[
                    ("title", string()),
                    ("subtitle", nullable_string()),
                    ("image_url", nullable_string()),
                    ("url", nullable_string()),
                ],
                &[],
            );
            let attachment = object(
                &[
                    ("url", string()),
                    ("content_type", nullable_string()),
                    ("name", nullable_string()),
                    ("size_bytes", json!({ "type": ["integer", "null"] })),
                ],
                &[],
            );
            let content = object(
                &[
                    ("quick_replies", json!({ "type": "array", "items": quick_reply })),
                    ("cards", json!({ "type": "array", "items": card })),
                    ("attachments", json!({ "type": "array", "items": attachment })),
                ],
                &[],
            );
            object(
                &[
                    ("id", string()),
                    ("conversation_id", string()),
                    ("role", one_of(&["customer", "bot", "agent", "system"])),
                    ("text", string()),
                    ("content", content),
                    ("author_id", nullable_string()),
                    ("position", json!({ "type": "integer", "minimum": 1 })),
                ],
                &[],
            )
        }
        CONVERSATION_STATUS_CHANGED => object(
            &[
                ("conversation_id", string()),
                ("from", nullable_one_of(STATUSES)),
                ("to", nullable_one_of(STATUSES)),
                ("reason", nullable_string()),
                ("agent_id", nullable_string()),
            ],
            &[],
        ),
        CONVERSATION_UPDATED => object(
            &[
                ("conversation_id", string()),
                (
                    "changed",
                    json!({ "type": "array", "items": one_of(&["priority", "tags", "attributes"]) }),
                ),
            ],
            &[
                ("priority", one_of(PRIORITIES)),
                ("tags_added", strings()),
                ("tags_removed", strings()),
                ("attributes_set", string_map()),
                ("attributes_removed", strings()),
            ],
        ),
        CSAT_SUBMITTED => object(
            &[
                ("conversation_id", string()),
                ("score", json!({ "type": "integer", "minimum": 1, "maximum": 5 })),
                ("comment", nullable_string()),
            ],
            &[],
        ),
        CONTACT_CREATED => object(
            &[
                ("contact_id", string()),
                ("name", nullable_string()),
                ("identity", json!({ "oneOf": [identity, { "type": "null" }] })),
                ("attributes", string_map()),
            ],
            &[],
        ),
        CONTACT_UPDATED => object(
            &[
                ("contact_id", string()),
                (
                    "changed",
                    json!({ "type": "array", "items": one_of(&["name", "attributes", "identities"]) }),
                ),
            ],
            &[
                ("name", string()),
                ("attributes_set", string_map()),
                ("identities_added", json!({ "type": "array", "items": identity })),
            ],
        ),
        CONTACT_MERGED => object(&[("source_contact_id", string()), ("target_contact_id", string())], &[]),
        ROUTING_DECIDED => object(
            &[
                ("conversation_id", string()),
                ("message_id", string()),
                ("route", one_of(&["bot", "queue"])),
                ("queue", nullable_string()),
                (
                    "priority",
                    json!({ "type": ["integer", "null"], "minimum": 1, "maximum": 10 }),
                ),
                ("skills", skills()),
                ("rule", string()),
                ("rules_version", integer()),
                ("tags_added", strings()),
                ("escalate", boolean()),
                ("understanding", understanding()),
            ],
            &[],
        ),
        CONVERSATION_HANDOFF => object(
            &[
                ("conversation_id", string()),
                ("queue", string()),
                ("priority", json!({ "type": "integer", "minimum": 1, "maximum": 10 })),
                (
                    "reason",
                    one_of(&["customer_request", "low_confidence", "negative_sentiment", "rule"]),
                ),
                ("channel", string()),
                ("skills", skills()),
                ("languages", strings()),
                ("understanding", understanding()),
            ],
            &[],
        ),
        CONVERSATION_ASSIGNED => object(
            &[
                ("conversation_id", string()),
                ("agent_id", string()),
                ("queue", nullable_string()),
                ("waited_ms", integer()),
            ],
            &[],
        ),
        AGENT_STATUS_CHANGED => object(
            &[
                ("agent_id", string()),
                ("status", one_of(&["online", "away", "offline"])),
            ],
            &[],
        ),
        TICKET_CREATED => object(
            &[
                ("ticket_id", string()),
                ("subject", string()),
                ("description", string()),
                ("status", one_of(&["new"])),
                ("priority", one_of(TICKET_PRIORITIES)),
                ("requester", ticket_requester()),
                ("assignee_id", nullable_string()),
                ("group", nullable_string()),
                ("tags", strings()),
                ("custom_fields", string_map()),
                ("due_at", nullable_string()),
                ("conversation_id", nullable_string()),
                ("actor", ticket_actor()),
                ("origin", nullable_string()),
            ],
            &[],
        ),
        TICKET_UPDATED => object(
            &[
                ("ticket_id", string()),
                ("changed", strings()),
                ("actor", ticket_actor()),
                ("origin", nullable_string()),
            ],
            &[
                ("subject", string()),
                ("description", string()),
                ("priority", one_of(TICKET_PRIORITIES)),
                ("status", one_of(TICKET_STATUSES)),
                ("previous_status", one_of(TICKET_STATUSES)),
                ("assignee_id", nullable_string()),
                ("group", nullable_string()),
                ("tags_added", strings()),
                ("tags_removed", strings()),
                ("custom_fields_set", string_map()),
                ("custom_fields_removed", strings()),
                ("due_at", string()),
            ],
        ),
        WEBHOOK_ENDPOINT_DISABLED => object(
            &[
                ("endpoint_id", string()),
                ("reason", one_of(&["requested", "gone", "failing"])),
                ("detail", nullable_string()),
            ],
            &[],
        ),
        _ => json!({ "type": "object" }),
    }
}

fn description(name: &str) -> &'static str {
    match name {
        CONVERSATION_CREATED => "A customer conversation was opened; it starts with the bot.",
        MESSAGE_CREATED => "A message was added to a conversation.",
        CONVERSATION_STATUS_CHANGED => "A conversation's status changed.",
        CONVERSATION_UPDATED => "A conversation's priority, tags or custom attributes changed.",
        CSAT_SUBMITTED => "The customer rated the conversation.",
        CONTACT_CREATED => "A contact was created from a channel identity.",
        CONTACT_UPDATED => "A contact's name, attributes or identities changed.",
        CONTACT_MERGED => "A contact was merged into another and is from now on an alias of it.",
        ROUTING_DECIDED => "A customer message was routed to the bot or to a queue of human agents.",
        CONVERSATION_HANDOFF => "A conversation was handed off to wait for a human agent.",
        CONVERSATION_ASSIGNED => "A human agent took a conversation.",
        AGENT_STATUS_CHANGED => "An agent's presence changed.",
        TICKET_CREATED => "A ticket was created, here or in the external ticket system a connector follows.",
        TICKET_UPDATED => "A ticket changed, here or in the external ticket system a connector follows.",
        WEBHOOK_ENDPOINT_DISABLED => "Deliveries to a webhook endpoint stopped.",
        _ => "",
    }
}

/// Every public event type of [`EVENT_TYPES`], in catalogue order, with its schema.
pub fn event_types() -> Vec<EventTypeInfo> {
    EVENT_TYPES
        .iter()
        .map(|&name| {
            let version = 1;
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": format!("https://yiwaiwai.dev/schemas/events/{name}/v{version}.json"),
                "title": name,
                "description": description(name),
                "type": "object",
                "required": ["id", "type", "tenant_id", "aggregate_id", "occurred_at", "data"],
                "properties": {
                    "id": { "type": "string", "description": "The event's id (a UUIDv7); deduplicate by it." },
                    "type": { "const": name },
                    "tenant_id": string(),
                    "aggregate_id": string(),
                    "occurred_at": { "type": "string", "format": "date-time" },
                    "data": data_schema(name),
                },
            });
            EventTypeInfo {
                name,
                version,
                description: description(name),
                schema,
            }
        })
        .collect()
}

/// Panics unless every key the schema of `event`'s type requires is in its `data`: the mapping
/// tests run every event they build through it, so schema and mapping cannot drift apart.
#[cfg(test)]
pub(crate) fn assert_has_required_keys(event: &crate::PublicEvent) {
    let schema = data_schema(&event.event_type);
    for key in schema["required"].as_array().expect("required keys") {
        let key = key.as_str().expect("key");
        assert!(
            event.data.get(key).is_some(),
            "{} lacks {key}: {}",
            event.event_type,
            event.data
        );
    }
}

/// All schemas as one document, as committed in `docs/event-schemas.json`.
pub fn catalogue_document() -> Value {
    let types: Vec<Value> = event_types()
        .into_iter()
        .map(|t| json!({ "name": t.name, "version": t.version, "description": t.description, "schema": t.schema }))
        .collect();
    json!({ "event_types": types })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_description_and_a_data_schema() {
        for info in event_types() {
            assert!(!info.description.is_empty(), "{}", info.name);
            let data = &info.schema["properties"]["data"];
            assert!(data.get("required").is_some(), "{} has no data schema", info.name);
        }
    }

    #[test]
    fn the_committed_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/event-schemas.json");
        let expected = serde_json::to_string_pretty(&catalogue_document()).expect("json") + "\n";
        if std::env::var_os("YY_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/event-schemas.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "docs/event-schemas.json differs from the code; run YY_UPDATE_SCHEMAS=1 cargo nextest run -p yy-events"
        );
    }
}
