//! The public event catalogue: the one mapping from the protobuf events stored in the log to the
//! JSON events clients receive over Server-Sent Events, WebSocket and webhooks.
//!
//! Stored events are an internal format that may be reorganised; public events are a contract.
//! Every transport delivers the same [`PublicEvent`], built here and nowhere else, so a client
//! sees one shape whichever way it listens. Stored events this catalogue does not know (newer
//! schemas, other contexts, internal bookkeeping) map to no public event.
//!
//! # The envelope
//!
//! ```json
//! {
//!   "id": "01890a5d-ac96-774b-bcce-b302099a8057",
//!   "type": "message.created",
//!   "tenant_id": "ten_1",
//!   "aggregate_id": "conv_9",
//!   "occurred_at": "2025-01-31T09:30:00.125Z",
//!   "data": { "...": "per type, below" }
//! }
//! ```
//!
//! - `id`: the stored event's id, a UUIDv7: unique, and sorting by creation time. Deliveries can
//!   repeat (a client resuming mid-way, a webhook retried), so consumers use it to deduplicate.
//! - `type`: one of [`EVENT_TYPES`]. Names are `<resource>.<change>` and never change meaning.
//! - `tenant_id`, `aggregate_id`: whose event and which conversation or contact it is about.
//! - `occurred_at`: when it happened, RFC 3339 in UTC.
//! - `data`: the fields below. New fields may be added; existing ones keep their meaning.
//!
//! Conventions in `data`: enumerations are lowercase strings; an optional text that was not given
//! is `null`, not `""`; maps are JSON objects with string values.
//!
//! # Conversation events
//!
//! **`conversation.created`**: a customer conversation was opened; it starts with the bot.
//! `conversation_id`, `contact_id`, `channel` (such as `"web"`), `subject` (or `null`),
//! `priority`, `tags` (array), `attributes` (object).
//!
//! **`message.created`**: a message was added to a conversation. `id` (`"msg_…"`),
//! `conversation_id`, `role` (`"customer"`, `"bot"`, `"agent"` or `"system"`), `text` (may be
//! `""` when `content` carries the message), `content` with `quick_replies`
//! (`[{title, payload}]`; `payload` is the title when none was given), `cards`
//! (`[{title, subtitle, image_url, url}]`) and `attachments`
//! (`[{url, content_type, name, size_bytes}]`), `author_id` (such as the agent's id, `null` for
//! the customer) and `position` (1 for the first message of the conversation).
//!
//! **`conversation.status_changed`**: `conversation_id`, `from` and `to`, each one of `"bot"`,
//! `"queued"`, `"assigned"`, `"resolved"`, `"closed"`; `reason` (in words, or `null`);
//! `agent_id` (the agent it is now assigned to when `to` is `"assigned"`, else `null`).
//!
//! **`conversation.updated`**: the priority, tags or custom attributes changed.
//! `conversation_id`, and `changed`, the list of what changed, with the matching keys:
//!
//! | `changed` holds | keys present |
//! |---|---|
//! | `"priority"` | `priority`: the new priority |
//! | `"tags"` | `tags_added`, `tags_removed`: arrays |
//! | `"attributes"` | `attributes_set`: object of the new values; `attributes_removed`: array of keys |
//!
//! **`csat.submitted`**: the customer rated the conversation. `conversation_id`, `score` (1 to
//! 5), `comment` (or `null`).
//!
//! Priorities are `"low"`, `"normal"`, `"high"`, `"urgent"`.
//!
//! # Contact events
//!
//! **`contact.created`**: `contact_id`, `name` (or `null`), `identity` (`{channel,
//! external_id}`: the channel identity it was created from), `attributes` (object).
//!
//! **`contact.updated`**: `contact_id`, and `changed`, the list of what changed, with the
//! matching keys:
//!
//! | `changed` holds | keys present |
//! |---|---|
//! | `"name"` | `name`: the new name |
//! | `"attributes"` | `attributes_set`: object of the new values |
//! | `"identities"` | `identities_added`: array of `{channel, external_id}` now also this contact's |
//!
//! **`contact.merged`**: a contact was merged into another and is from now on an alias of it;
//! its identities and conversations are the target's. `source_contact_id` (the contact merged,
//! also the event's `aggregate_id`), `target_contact_id`. The target contact has no event of its
//! own for the merge: listeners for it follow `target_contact_id`.
//!
//! # Routing events
//!
//! Routing decides who answers each conversation (see `docs/routing.md`). Its public events name
//! the conversation (or, for presence, the agent) as their `aggregate_id`.
//!
//! **`routing.decided`**: a customer message was routed. `conversation_id`, `message_id`,
//! `route` (`"bot"` or `"queue"`), `queue` and `priority` (1 to 10; both `null` for the bot),
//! `skills` (`[{name, min_level}]`), `rule` (the rule that matched), `rules_version` (0: the
//! built-in rules), `tags_added`, `escalate`, and `understanding`: `{language, intent,
//! confidence, fallback, sentiment, sentiment_label, entities}` (`intent` and `confidence` are
//! the best intent's, or `null`).
//!
//! **`conversation.handoff`**: the conversation started waiting for a human agent. `conversation_id`,
//! `queue`, `priority`, `reason` (`"customer_request"`, `"low_confidence"`, `"negative_sentiment"`
//! or `"rule"`), `channel`, `skills`, `languages` (the agent must speak one; empty: any) and
//! `understanding` of the latest customer message (or `null`).
//!
//! **`conversation.assigned`**: an agent took the conversation. `conversation_id`, `agent_id`,
//! `queue` (or `null` for a direct transfer), `waited_ms` (time spent waiting).
//!
//! **`agent.status_changed`**: `agent_id`, `status` (`"online"`, `"away"` or `"offline"`).
//!
//! # Ticket events
//!
//! The ticket's id (`tkt_…`) is the `aggregate_id`. Both are emitted for changes made here and
//! for changes that came from the external ticket system a connector follows; `origin` names
//! that connector (`null` when the change was made here), so a subscriber that is that system
//! can skip its own changes.
//!
//! **`ticket.created`**: `ticket_id`, `subject`, `description`, `status` (`"new"`), `priority`
//! (`"low"`, `"normal"`, `"high"`, `"urgent"`), `requester` (`{contact_id, name, email}`, each
//! or `null`), `assignee_id`, `group` (or `null`), `tags`, `custom_fields` (object), `due_at`
//! (RFC 3339, or `null` without an SLA policy), `conversation_id` (the conversation it was
//! created from, or `null`), `actor` (`{kind, id}`: `"agent"`, `"flow"`, `"rule"`, `"api"`,
//! `"connector"` or `"system"`), `origin`.
//!
//! **`ticket.updated`**: `ticket_id`, `changed` (the list of what changed), `actor`, `origin`, and
//! the keys of what changed: `subject`, `description`, `priority`, `status` with
//! `previous_status` (`"new"`, `"open"`, `"pending"`, `"solved"`, `"closed"`), `assignee_id` and
//! `group` (`null` when removed), `tags` as `tags_added`/`tags_removed`, `custom_fields` as
//! `custom_fields_set`/`custom_fields_removed`, `due_at`. Comments are not public events yet.
//!
//! # Webhook events
//!
//! **`webhook.endpoint_disabled`**: deliveries to an endpoint stopped. `endpoint_id`, `reason`
//! (`"requested"`, `"gone"`: it answered 410, `"failing"`: every attempt failed for the configured
//! number of days) and `detail` (or `null`).
//!
//! # Schemas
//!
//! [`schema::event_types`] gives each type's version and JSON Schema (envelope and `data`);
//! `docs/event-schemas.json` holds them all and a test keeps it in step with the code.
//!
//! # Filtering by type
//!
//! [`type_matches`] and [`TypeFilter`] accept exact names (`message.created`), a resource's
//! events (`conversation.*`) and everything (`*`).

mod conversation;
mod routing;
pub mod schema;
mod ticket;
mod webhook;

use serde::Serialize;
use utoipa::ToSchema;
use yy_eventlog::{EventEnvelope, Record};

/// Every public event type, in catalogue order. A type, once here, is never removed or renamed.
pub const EVENT_TYPES: &[&str] = &[
    CONVERSATION_CREATED,
    MESSAGE_CREATED,
    CONVERSATION_STATUS_CHANGED,
    CONVERSATION_UPDATED,
    CSAT_SUBMITTED,
    CONTACT_CREATED,
    CONTACT_UPDATED,
    CONTACT_MERGED,
    ROUTING_DECIDED,
    CONVERSATION_HANDOFF,
    CONVERSATION_ASSIGNED,
    AGENT_STATUS_CHANGED,
    TICKET_CREATED,
    TICKET_UPDATED,
    WEBHOOK_ENDPOINT_DISABLED,
];

/// A conversation was opened.
pub const CONVERSATION_CREATED: &str = "conversation.created";
/// A message was added to a conversation.
pub const MESSAGE_CREATED: &str = "message.created";
/// A conversation's status changed.
pub const CONVERSATION_STATUS_CHANGED: &str = "conversation.status_changed";
/// A conversation's priority, tags or attributes changed.
pub const CONVERSATION_UPDATED: &str = "conversation.updated";
/// The customer rated a conversation.
pub const CSAT_SUBMITTED: &str = "csat.submitted";
/// A contact was created.
pub const CONTACT_CREATED: &str = "contact.created";
/// A contact's name, attributes or identities changed.
pub const CONTACT_UPDATED: &str = "contact.updated";
/// A contact was merged into another.
pub const CONTACT_MERGED: &str = "contact.merged";

/// A customer message was routed to the bot or a queue.
pub const ROUTING_DECIDED: &str = "routing.decided";
/// A conversation was handed off from the bot to wait for a human agent.
pub const CONVERSATION_HANDOFF: &str = "conversation.handoff";
/// A human agent took a conversation.
pub const CONVERSATION_ASSIGNED: &str = "conversation.assigned";
/// An agent's presence changed.
pub const AGENT_STATUS_CHANGED: &str = "agent.status_changed";
/// A ticket was created.
pub const TICKET_CREATED: &str = "ticket.created";
/// A ticket changed: status, priority, assignee, group, tags, custom fields, subject or text.
pub const TICKET_UPDATED: &str = "ticket.updated";
/// Deliveries to a webhook endpoint stopped.
pub const WEBHOOK_ENDPOINT_DISABLED: &str = "webhook.endpoint_disabled";

/// One public event: what live streams and webhooks deliver, serialized as JSON.
///
/// Built only by [`public_events`] / [`public_event`], so every transport shows the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PublicEvent {
    /// The stored event's id (a UUIDv7): unique; consumers deduplicate repeated deliveries by it.
    pub id: String,
    /// The event type, one of [`EVENT_TYPES`].
    #[serde(rename = "type")]
    #[schema(example = "message.created")]
    pub event_type: String,
    /// The tenant the event belongs to.
    pub tenant_id: String,
    /// What the event is about: a conversation (`conv_…`), contact (`ctc_…`), agent (`agt_…`)
    /// or webhook endpoint (`whk_…`).
    pub aggregate_id: String,
    /// When it happened, RFC 3339 in UTC.
    #[schema(example = "2025-01-31T09:30:00.125Z")]
    pub occurred_at: String,
    /// The type's fields, as the catalogue documents them.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The public events of one stored commit, in the order they were stored; stored events without
/// a public counterpart are left out.
pub fn public_events(record: &Record) -> Vec<PublicEvent> {
    record
        .commit
        .events
        .iter()
        .filter_map(|envelope| public_event(record, envelope))
        .collect()
}

/// The public event of one stored event of `record`, if it has one.
///
/// The tenant is taken from where the commit is stored (its subject), which is what every tenant
/// filter acts on, so an event can never be shown as another tenant's than the one whose stream
/// delivered it. The aggregate is the stored one, except for routing events, which name the
/// conversation or agent rather than the tenant's desk.
pub fn public_event(record: &Record, envelope: &EventEnvelope) -> Option<PublicEvent> {
    let payload = envelope.payload.as_ref()?;
    let (event_type, aggregate_id, data) = match conversation::map(&record.aggregate_id, payload) {
        Some((event_type, data)) => (event_type, record.aggregate_id.clone(), data),
        None => {
            match webhook::map(&record.aggregate_id, payload).or_else(|| ticket::map(&record.aggregate_id, payload)) {
                Some((event_type, data)) => (event_type, record.aggregate_id.clone(), data),
                None => routing::map(payload)?,
            }
        }
    };
    // Writers always set the time; an envelope without one reads as the Unix epoch, the protobuf
    // default, rather than being withheld.
    let occurred_at = envelope.occurred_at.unwrap_or_default().to_string();
    Some(PublicEvent {
        id: envelope.event_id.clone(),
        event_type: event_type.to_owned(),
        tenant_id: record.tenant_id.clone(),
        aggregate_id,
        occurred_at,
        data,
    })
}

/// Whether `event_type` matches `filter`: the exact name, `<resource>.*` for every type of that
/// resource (`conversation.*` matches `conversation.updated`, not `message.created`), or `*`.
pub fn type_matches(filter: &str, event_type: &str) -> bool {
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix(".*") {
        Some(resource) => event_type
            .strip_prefix(resource)
            .is_some_and(|rest| rest.starts_with('.')),
        None => filter == event_type,
    }
}

/// A set of type filters, as clients give them: a comma-separated list such as
/// `message.created,conversation.*`. An event passes when any filter matches it.
///
/// Every filter must match at least one type of [`EVENT_TYPES`], so a misspelt name is refused
/// instead of silently matching nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter {
    filters: Vec<String>,
}

impl TypeFilter {
    /// Every event.
    pub fn all() -> Self {
        TypeFilter {
            filters: vec!["*".into()],
        }
    }

    /// Parses a comma-separated list; blanks around names are ignored. The error names the
    /// filter that matches no known type.
    pub fn parse(list: &str) -> Result<Self, String> {
        let filters: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        if filters.is_empty() {
            return Err("give at least one event type, such as message.created or conversation.*".into());
        }
        if let Some(unknown) = filters.iter().find(|f| !EVENT_TYPES.iter().any(|t| type_matches(f, t))) {
            return Err(format!(
                "{:?} matches no event type; known types: {}",
                unknown.chars().take(100).collect::<String>(),
                EVENT_TYPES.join(", ")
            ));
        }
        Ok(TypeFilter { filters })
    }

    /// Whether an event of `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        self.filters.iter().any(|f| type_matches(f, event_type))
    }
}

impl Default for TypeFilter {
    fn default() -> Self {
        Self::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_a_resource_or_everything() {
        assert!(type_matches("*", "message.created"));
        assert!(type_matches("message.created", "message.created"));
        assert!(!type_matches("message.created", "message.updated"));
        assert!(type_matches("conversation.*", "conversation.status_changed"));
        assert!(type_matches("conversation.*", "conversation.created"));
        assert!(!type_matches("conversation.*", "message.created"));
        assert!(!type_matches("conversation.*", "conversation"));
        assert!(!type_matches("conv.*", "conversation.created"));
        assert!(!type_matches("", "message.created"));
        assert!(!type_matches("message", "message.created"));
    }

    #[test]
    fn catalogue_names_are_unique_and_well_formed() {
        let mut names = EVENT_TYPES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENT_TYPES.len());
        for name in EVENT_TYPES {
            let (resource, change) = name.split_once('.').expect("resource.change");
            assert!(!resource.is_empty() && !change.is_empty() && !change.contains('.'));
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'));
        }
    }

    #[test]
    fn type_filters_parse_lists_and_refuse_unknown_names() {
        let filter = TypeFilter::parse(" message.created , conversation.* ").expect("parse");
        assert!(filter.matches("message.created"));
        assert!(filter.matches("conversation.updated"));
        assert!(!filter.matches("contact.created"));
        assert!(!filter.matches("csat.submitted"));
        assert!(TypeFilter::parse("*").expect("all").matches("contact.merged"));
        assert!(TypeFilter::all().matches("csat.submitted"));

        let error = TypeFilter::parse("message.created,mesage.created").expect_err("typo");
        assert!(error.contains("\"mesage.created\""), "{error}");
        assert!(TypeFilter::parse("").is_err());
        assert!(TypeFilter::parse(" , ").is_err());
        assert!(TypeFilter::parse("invoice.*").is_err());
        assert!(
            TypeFilter::parse("ticket.*")
                .expect("tickets")
                .matches("ticket.updated")
        );
        assert!(
            TypeFilter::parse("agent.*")
                .expect("agents")
                .matches("agent.status_changed")
        );
    }
}
