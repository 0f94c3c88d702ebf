//! The JSON shapes of the ticket part of the REST API (tickets, comments, history, SLA policies,
//! connectors and their health, CRM profiles) and their translation to and from the ticket API.
//!
//! The ticket API spells enumerations as lowercase strings already; here they are schema enums
//! so that clients see every value. Connector secrets are accepted in requests and never
//! appear in a response: the ticket API does not return them, and no shape here has a field
//! that could hold one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use yy_proto::ticket::v1 as pb;

use crate::rest::model::{Priority, non_empty, timestamp};

/// Where a ticket is in its life. `closed` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    /// Just created; nobody has looked at it.
    New,
    /// Being worked on.
    Open,
    /// Waiting for the requester or a third party.
    Pending,
    /// Solved; it may be reopened.
    Solved,
    /// Closed for good; follow-up is a new ticket.
    Closed,
}

impl TicketStatus {
    /// Every status with its name, for parsing query parameters.
    pub const ALL: [(&'static str, TicketStatus); 5] = [
        ("new", TicketStatus::New),
        ("open", TicketStatus::Open),
        ("pending", TicketStatus::Pending),
        ("solved", TicketStatus::Solved),
        ("closed", TicketStatus::Closed),
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Open => "open",
            TicketStatus::Pending => "pending",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }

    fn parse(name: &str) -> TicketStatus {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, status)| *status)
            .unwrap_or_else(|| {
                tracing::error!(status = name, "the ticket service sent an unknown ticket status");
                TicketStatus::Open
            })
    }
}

fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

fn parse_priority(name: &str) -> Priority {
    match Priority::ALL.iter().find(|(n, _)| *n == name) {
        Some((_, priority)) => *priority,
        // The ticket API leaves the default unspelt in places; unset means normal.
        None if name.is_empty() => Priority::Normal,
        None => {
            tracing::error!(priority = name, "the ticket service sent an unknown priority");
            Priority::Normal
        }
    }
}

fn time(time: Option<prost_types::Timestamp>) -> Option<String> {
    time.map(|t| timestamp(Some(t)))
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "agent", "id": "agt_li_wei"}))]
pub struct Actor {
    /// `agent`, `flow`, `rule` or `api` when given; answers also show `connector` (a change from
    /// an external system) and `system`.
    pub kind: String,
    /// Within the kind: the agent's id, the flow node, the rule's name, the connector's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Actor {
    fn into_proto(self) -> pb::Actor {
        pb::Actor {
            kind: self.kind,
            id: self.id.unwrap_or_default(),
        }
    }

    fn from_proto(actor: Option<pb::Actor>) -> Actor {
        let actor = actor.unwrap_or_default();
        Actor {
            kind: actor.kind,
            id: non_empty(actor.id),
        }
    }
}

fn actor_value(actor: Option<pb::Actor>) -> Value {
    serde_json::to_value(Actor::from_proto(actor)).unwrap_or(Value::Null)
}

/// The customer a ticket is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e", "name": "Ada Lovelace", "email": "ada@example.com"}))]
pub struct Requester {
    /// The contact (`ctc_…`), when the requester is a known contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The requester's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The requester's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Requester {
    fn into_proto(self) -> pb::Requester {
        pb::Requester {
            contact_id: self.contact_id.unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            email: self.email.unwrap_or_default(),
        }
    }

    fn from_proto(requester: Option<pb::Requester>) -> Option<Requester> {
        let r = requester?;
        let requester = Requester {
            contact_id: non_empty(r.contact_id),
            name: non_empty(r.name),
            email: non_empty(r.email),
        };
        (requester != Requester::default()).then_some(requester)
    }
}

/// A comment on a ticket, public or an internal note.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "cmt_0196f7b2c1d07a1b9e3c5d2f4a",
    "ticket_id": "tkt_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "body": "We have asked the carrier to trace parcel 8812.",
    "public": true,
    "author": {"kind": "agent", "id": "agt_li_wei"},
    "created_at": "2025-05-20T09:02:11.5Z"
}))]
pub struct Comment {
    /// `cmt_…`.
    pub id: String,
    /// The ticket.
    pub ticket_id: String,
    /// The text.
    pub body: String,
    /// `true` for a public comment, `false` for an internal note.
    pub public: bool,
    /// Who wrote it.
    pub author: Actor,
    /// The connector whose external system it came from; absent when written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When it was added (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<pb::Comment> for Comment {
    fn from(comment: pb::Comment) -> Self {
        Comment {
            id: comment.id,
            ticket_id: comment.ticket_id,
            body: comment.body,
            public: comment.public,
            author: Actor::from_proto(comment.author),
            origin: non_empty(comment.origin),
            created_at: timestamp(comment.created_at),
        }
    }
}

/// A ticket's state in one external ticket system.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ExternalLink {
    /// The connector (`cnx_…`).
    pub connector_id: String,
    /// The ticket's id there; absent until it was created there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Changes scheduled for it and not sent yet.
    pub pending: u32,
    /// The last error, while something is pending and failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A ticket.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "tkt_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "subject": "Parcel 8812 never arrived",
    "description": "The customer has waited 12 days.",
    "requester": {"contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e", "name": "Ada Lovelace", "email": "ada@example.com"},
    "priority": "high",
    "status": "open",
    "assignee_id": "agt_li_wei",
    "tags": ["shipping"],
    "custom_fields": {"order_id": "8812"},
    "due_at": "2025-05-20T12:30:00Z",
    "conversation_ids": ["conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"],
    "comments": [],
    "external": [{"connector_id": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e", "external_id": "48213", "pending": 0}],
    "created_at": "2025-05-20T08:30:00.123Z",
    "updated_at": "2025-05-20T08:41:07.9Z",
    "created_by": {"kind": "agent", "id": "agt_li_wei"}
}))]
pub struct Ticket {
    /// `tkt_…`.
    pub id: String,
    /// A one-line summary.
    pub subject: String,
    /// The full description; empty when none was given.
    pub description: String,
    /// Who it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// Its priority.
    pub priority: Priority,
    /// Its status.
    pub status: TicketStatus,
    /// The assigned agent; absent when unassigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<String>,
    /// The group; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Custom fields by name.
    pub custom_fields: BTreeMap<String, String>,
    /// When it is due under the SLA policy for its priority (RFC 3339); absent when none applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// Linked conversations, in the order they were linked.
    pub conversation_ids: Vec<String>,
    /// Comments and internal notes, oldest first.
    pub comments: Vec<Comment>,
    /// Its state in each external ticket system it is sent to.
    pub external: Vec<ExternalLink>,
    /// When it was created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Who created it.
    pub created_by: Actor,
}

impl From<pb::Ticket> for Ticket {
    fn from(ticket: pb::Ticket) -> Self {
        Ticket {
            id: ticket.id,
            subject: ticket.subject,
            description: ticket.description,
            requester: Requester::from_proto(ticket.requester),
            priority: parse_priority(&ticket.priority),
            status: TicketStatus::parse(&ticket.status),
            assignee_id: non_empty(ticket.assignee_id),
            group: non_empty(ticket.group),
            tags: ticket.tags,
            custom_fields: ticket.custom_fields.into_iter().collect(),
            due_at: time(ticket.due_at),
            conversation_ids: ticket.conversation_ids,
            comments: ticket.comments.into_iter().map(Comment::from).collect(),
            external: ticket
                .external
                .into_iter()
                .map(|e| ExternalLink {
                    connector_id: e.connector_id,
                    external_id: non_empty(e.external_id),
                    pending: e.pending,
                    last_error: non_empty(e.last_error),
                })
                .collect(),
            created_at: timestamp(ticket.created_at),
            updated_at: timestamp(ticket.updated_at),
            created_by: Actor::from_proto(ticket.created_by),
        }
    }
}

/// A page of tickets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TicketPage {
    /// Newest first.
    pub tickets: Vec<Ticket>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

/// A ticket to create. With `conversation_id` it is created from that conversation: linked to
/// it, and for its contact unless a requester is given.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "subject": "Parcel 8812 never arrived",
    "description": "The customer has waited 12 days.",
    "priority": "high",
    "tags": ["shipping"],
    "custom_fields": {"order_id": "8812"},
    "conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "created_by": {"kind": "agent", "id": "agt_li_wei"}
}))]
pub struct CreateTicket {
    /// Required; at most 500 characters.
    pub subject: String,
    /// At most 65,536 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Who it is for; from a conversation, its contact when left out.
    #[serde(default)]
    pub requester: Option<Requester>,
    /// `normal` when left out.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// The assigned agent.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// The group.
    #[serde(default)]
    pub group: Option<String>,
    /// 1–64 characters each without spaces, at most 50.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Names of 1–64 letters, digits, `_` or `-`; at most 100.
    #[serde(default)]
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// The conversation it comes from (`conv_…`); linked to it.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Who creates it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub created_by: Option<Actor>,
}

/// A ticket to create from the conversation in the path: linked to it, and for its contact
/// unless a requester is given.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "subject": "Parcel 8812 never arrived",
    "priority": "high",
    "tags": ["shipping"],
    "created_by": {"kind": "agent", "id": "agt_li_wei"}
}))]
pub struct CreateTicketFromConversation {
    /// Required; at most 500 characters.
    pub subject: String,
    /// At most 65,536 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Who it is for; the conversation's contact when left out.
    #[serde(default)]
    pub requester: Option<Requester>,
    /// `normal` when left out.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// The assigned agent.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// The group.
    #[serde(default)]
    pub group: Option<String>,
    /// 1–64 characters each without spaces, at most 50.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Names of 1–64 letters, digits, `_` or `-`; at most 100.
    #[serde(default)]
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// Who creates it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub created_by: Option<Actor>,
}

impl From<CreateTicketFromConversation> for CreateTicket {
    fn from(body: CreateTicketFromConversation) -> Self {
        CreateTicket {
            subject: body.subject,
            description: body.description,
            requester: body.requester,
            priority: body.priority,
            assignee_id: body.assignee_id,
            group: body.group,
            tags: body.tags,
            custom_fields: body.custom_fields,
            conversation_id: None,
            created_by: body.created_by,
        }
    }
}

impl CreateTicket {
    pub(crate) fn into_proto(self, command_id: String) -> pb::CreateTicketRequest {
        pb::CreateTicketRequest {
            command_id,
            subject: self.subject,
            description: self.description.unwrap_or_default(),
            requester: self.requester.map(Requester::into_proto),
            priority: self.priority.map(priority_name).unwrap_or_default().to_owned(),
            assignee_id: self.assignee_id.unwrap_or_default(),
            group: self.group.unwrap_or_default(),
            tags: self.tags.unwrap_or_default(),
            custom_fields: self.custom_fields.unwrap_or_default().into_iter().collect(),
            conversation_id: self.conversation_id.unwrap_or_default(),
            created_by: self.created_by.map(Actor::into_proto),
        }
    }
}

/// Changes to a ticket; fields left out keep their value. A status change must be allowed from
/// the current status (see the guide).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "pending", "assignee_id": "agt_li_wei", "add_tags": ["carrier"], "actor": {"kind": "agent", "id": "agt_li_wei"}}))]
pub struct UpdateTicket {
    /// A new subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// A new priority; the due time follows it under the SLA policy.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// A new status.
    #[serde(default)]
    pub status: Option<TicketStatus>,
    /// A new assignee; `""` unassigns.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// A new group; `""` removes it.
    #[serde(default)]
    pub group: Option<String>,
    /// Tags to add.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// Custom fields to set.
    #[serde(default)]
    pub set_custom_fields: BTreeMap<String, String>,
    /// Custom fields to remove.
    #[serde(default)]
    pub remove_custom_fields: Vec<String>,
    /// Who changes it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub actor: Option<Actor>,
}

impl UpdateTicket {
    pub(crate) fn into_proto(self, ticket_id: String) -> pb::UpdateTicketRequest {
        pb::UpdateTicketRequest {
            command_id: String::new(),
            ticket_id,
            subject: self.subject,
            description: self.description,
            priority: self.priority.map(|p| priority_name(p).to_owned()),
            status: self.status.map(|s| s.as_str().to_owned()),
            assignee_id: self.assignee_id,
            group: self.group,
            add_tags: self.add_tags,
            remove_tags: self.remove_tags,
            set_custom_fields: self.set_custom_fields.into_iter().collect(),
            remove_custom_fields: self.remove_custom_fields,
            actor: self.actor.map(Actor::into_proto),
        }
    }
}

/// A status change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "solved", "actor": {"kind": "agent", "id": "agt_li_wei"}}))]
pub struct ChangeStatus {
    /// The new status.
    pub status: TicketStatus,
    /// Who changes it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub actor: Option<Actor>,
}

/// A comment to add.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "We have asked the carrier to trace parcel 8812.", "public": true, "author": {"kind": "agent", "id": "agt_li_wei"}}))]
pub struct AddComment {
    /// Required; at most 65,536 characters.
    pub body: String,
    /// `false` makes it an internal note the requester never sees; default `true`.
    #[serde(default)]
    pub public: Option<bool>,
    /// Who writes it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub author: Option<Actor>,
}

impl AddComment {
    pub(crate) fn into_proto(self, ticket_id: String, command_id: String) -> pb::AddCommentRequest {
        pb::AddCommentRequest {
            command_id,
            ticket_id,
            body: self.body,
            public: self.public.unwrap_or(true),
            author: self.author.map(Actor::into_proto),
        }
    }
}

/// A conversation to link.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"}))]
pub struct LinkConversation {
    /// The conversation (`conv_…`).
    pub conversation_id: String,
    /// Who links it; `{"kind": "api"}` when left out.
    #[serde(default)]
    pub actor: Option<Actor>,
}

/// One change of a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "event_id": "0196f7b2-c1d0-7a1b-9e3c-5d2f4a6b8c0e",
    "occurred_at": "2025-05-20T08:41:07.9Z",
    "type": "updated",
    "change": {"status": "solved", "previous_status": "open", "actor": {"kind": "connector", "id": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"}, "origin": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e"}
}))]
pub struct HistoryEntry {
    /// The event's id (a UUIDv7).
    pub event_id: String,
    /// When it happened (RFC 3339).
    #[schema(format = DateTime)]
    pub occurred_at: String,
    /// What happened: `created`, `updated`, `comment_added`, `conversation_linked`,
    /// `conversation_unlinked`, `sync_scheduled`, `sync_succeeded`, `sync_failed` or
    /// `sync_abandoned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The change's fields, as in the ticket events (`proto/yy/ticket/v1/events.proto`); fields
    /// that did not change are left out. `origin` names the connector a change came from.
    #[schema(value_type = Object)]
    pub change: Value,
}

/// Drops the fields of `value` (an object) that are null, empty lists or empty maps, and empty
/// strings unless they are `meaningful` (an update to `""` unassigns or clears).
fn compact(mut value: Value, meaningful: &[&str]) -> Value {
    if let Value::Object(fields) = &mut value {
        fields.retain(|name, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty() || meaningful.contains(&name.as_str()),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
    }
    value
}

fn sorted(map: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

impl From<pb::TicketHistoryEntry> for HistoryEntry {
    fn from(entry: pb::TicketHistoryEntry) -> Self {
        use pb::ticket_history_entry::Change;
        let mut meaningful: &[&str] = &[];
        let (kind, change) = match entry.change {
            Some(Change::Created(c)) => (
                "created",
                json!({
                    "subject": c.subject, "description": c.description,
                    "requester": Requester::from_proto(c.requester), "priority": c.priority,
                    "assignee_id": c.assignee_id, "group": c.group, "tags": c.tags,
                    "custom_fields": sorted(c.custom_fields), "due_at": time(c.due_at),
                    "conversation_id": c.conversation_id, "actor": actor_value(c.actor), "origin": c.origin,
                }),
            ),
            Some(Change::Updated(u)) => (
                {
                    meaningful = &["subject", "description", "assignee_id", "group"];
                    "updated"
                },
                json!({
                    "subject": u.subject, "description": u.description, "priority": u.priority,
                    "status": u.status, "previous_status": u.previous_status,
                    "assignee_id": u.assignee_id, "group": u.group, "tags_added": u.tags_added,
                    "tags_removed": u.tags_removed, "custom_fields_set": sorted(u.custom_fields_set),
                    "custom_fields_removed": u.custom_fields_removed, "due_at": time(u.due_at),
                    "actor": actor_value(u.actor), "origin": u.origin,
                }),
            ),
            Some(Change::CommentAdded(c)) => (
                "comment_added",
                json!({
                    "comment_id": c.comment_id, "body": c.body, "public": c.public,
                    "author": actor_value(c.author), "origin": c.origin,
                }),
            ),
            Some(Change::ConversationLinked(l)) => (
                "conversation_linked",
                json!({"conversation_id": l.conversation_id, "actor": actor_value(l.actor)}),
            ),
            Some(Change::ConversationUnlinked(l)) => (
                "conversation_unlinked",
                json!({"conversation_id": l.conversation_id, "actor": actor_value(l.actor)}),
            ),
            Some(Change::SyncScheduled(s)) => (
                "sync_scheduled",
                json!({
                    "sync_id": s.sync_id, "connector_id": s.connector_id,
                    "operation": s.operation, "comment_id": s.comment_id,
                }),
            ),
            Some(Change::SyncSucceeded(s)) => (
                "sync_succeeded",
                json!({
                    "sync_id": s.sync_id, "connector_id": s.connector_id, "external_id": s.external_id,
                    "reconciled": s.reconciled, "attempt": s.attempt, "http_status": s.http_status,
                }),
            ),
            Some(Change::SyncFailed(s)) => (
                "sync_failed",
                json!({
                    "sync_id": s.sync_id, "connector_id": s.connector_id, "attempt": s.attempt,
                    "error": s.error, "http_status": (s.http_status != 0).then_some(s.http_status),
                    "next_attempt_at": time(s.next_attempt_at),
                }),
            ),
            Some(Change::SyncAbandoned(s)) => (
                "sync_abandoned",
                json!({"sync_id": s.sync_id, "connector_id": s.connector_id, "reason": s.reason}),
            ),
            None => {
                tracing::error!(
                    event_id = entry.event_id,
                    "the ticket service sent a history entry without a change"
                );
                ("unknown", json!({}))
            }
        };
        HistoryEntry {
            event_id: entry.event_id,
            occurred_at: timestamp(entry.occurred_at),
            kind: kind.to_owned(),
            change: compact(change, meaningful),
        }
    }
}

/// A ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TicketHistory {
    /// Every change, oldest first, including what was sent to external systems and what failed.
    pub entries: Vec<HistoryEntry>,
}

/// The tenant's SLA policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"resolution_minutes": {"urgent": 60, "high": 240}}))]
pub struct SlaPolicies {
    /// Priority (`low`, `normal`, `high`, `urgent`) to the minutes a ticket has until it is due
    /// (1 to 525,600); priorities not listed have no due time.
    pub resolution_minutes: BTreeMap<String, u32>,
}

// ---------------------------------------------------------------------------------------------
// Connectors.

/// What a connector connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// An external ticket system: tickets are sent to it, and its signed webhooks update them.
    TicketSystem,
    /// A CRM that contact profiles are fetched from.
    Crm,
    /// A feed of knowledge-base entries, pulled or pushed, imported into the knowledge base.
    KbFeed,
}

impl ConnectorKind {
    fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::TicketSystem => "ticket_system",
            ConnectorKind::Crm => "crm",
            ConnectorKind::KbFeed => "kb_feed",
        }
    }
}

/// How a connector authenticates, as sent to configure it: `"none"`, `{"bearer": {"token"}}`,
/// `{"basic": {"username", "password"}}` or `{"api_key": {"header", "key"}}`. Secrets are
/// write-only; an empty or absent one keeps the stored secret when the scheme is unchanged.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// Nothing is sent.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        #[serde(default)]
        token: Option<String>,
    },
    /// `Authorization: Basic …`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        #[serde(default)]
        password: Option<String>,
    },
    /// A key in a header of its own.
    ApiKey {
        /// The header, such as `X-Api-Key`.
        header: String,
        /// The key.
        #[serde(default)]
        key: Option<String>,
    },
}

impl AuthSettings {
    fn into_proto(self) -> Option<pb::Auth> {
        use pb::auth::Kind;
        let kind = match self {
            AuthSettings::None => return None,
            AuthSettings::Bearer { token } => Kind::Bearer(pb::BearerAuth {
                token: token.unwrap_or_default(),
            }),
            AuthSettings::Basic { username, password } => Kind::Basic(pb::BasicAuth {
                username,
                password: password.unwrap_or_default(),
            }),
            AuthSettings::ApiKey { header, key } => Kind::ApiKey(pb::ApiKeyAuth {
                header,
                key: key.unwrap_or_default(),
            }),
        };
        Some(pb::Auth { kind: Some(kind) })
    }
}

/// An HTTP request made from templates: every text may hold `{{variable}}` placeholders (see
/// the guide for the variables and escaping).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "PUT", "path": "/api/tickets/{{external.id}}", "body": "{\"ticket\": {\"status\": \"{{mapped.status}}\"}}"}))]
pub struct RequestTemplate {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Appended to the base URL; starts with `/`, may hold a query.
    pub path: String,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body, sent as `application/json` when not empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

impl RequestTemplate {
    fn into_proto(self) -> pb::RequestTemplate {
        pb::RequestTemplate {
            method: self.method,
            path: self.path,
            headers: self.headers.into_iter().collect(),
            body: self.body,
        }
    }

    fn from_proto(template: Option<pb::RequestTemplate>) -> Option<RequestTemplate> {
        template.map(|t| RequestTemplate {
            method: t.method,
            path: t.path,
            headers: sorted(t.headers),
            body: t.body,
        })
    }
}

/// How an external ticket system's webhook body is read: JSON pointers (RFC 6901) into it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"external_id_pointer": "/ticket/id", "status_pointer": "/ticket/status", "comment_pointer": "/comment/body"}))]
pub struct InboundMapping {
    /// The external ticket id; required to accept updates.
    pub external_id_pointer: String,
    /// The external status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_pointer: String,
    /// The external priority.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_pointer: String,
    /// The subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject_pointer: String,
    /// A new comment's text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment_pointer: String,
    /// Whether that comment is public (a boolean); public when absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment_public_pointer: String,
    /// External status to ours; statuses not listed use the reverse of `status_map`, then the
    /// same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, String>,
}

/// The settings of a `ticket_system` connector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketSystemSettings {
    /// Creates a ticket. Required.
    pub create: RequestTemplate,
    /// Sends a ticket's current fields after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<RequestTemplate>,
    /// Adds a comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<RequestTemplate>,
    /// Finds a ticket by our ticket id, so that a create whose answer was lost is never repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<RequestTemplate>,
    /// JSON pointer to the external id in the create answer, such as `/ticket/id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_id_pointer: String,
    /// JSON pointer to the found ticket's id in the search answer, such as `/results/0/id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub search_id_pointer: String,
    /// Our status to theirs, for `{{mapped.status}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, String>,
    /// Our priority to theirs, for `{{mapped.priority}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub priority_map: BTreeMap<String, String>,
    /// How its webhooks are read; without it, its webhooks are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<InboundMapping>,
    /// Whether tickets made here are sent to it; `false` makes it inbound only. Default `true`.
    #[serde(default = "yes")]
    pub outbound: bool,
}

fn yes() -> bool {
    true
}

impl TicketSystemSettings {
    fn into_proto(self) -> pb::TicketSystemSettings {
        pb::TicketSystemSettings {
            create: Some(self.create.into_proto()),
            update: self.update.map(RequestTemplate::into_proto),
            comment: self.comment.map(RequestTemplate::into_proto),
            search: self.search.map(RequestTemplate::into_proto),
            external_id_pointer: self.external_id_pointer,
            search_id_pointer: self.search_id_pointer,
            status_map: self.status_map.into_iter().collect(),
            priority_map: self.priority_map.into_iter().collect(),
            inbound: self.inbound.map(|i| pb::InboundMapping {
                external_id_pointer: i.external_id_pointer,
                status_pointer: i.status_pointer,
                priority_pointer: i.priority_pointer,
                subject_pointer: i.subject_pointer,
                comment_pointer: i.comment_pointer,
                comment_public_pointer: i.comment_public_pointer,
                status_map: i.status_map.into_iter().collect(),
            }),
            outbound: self.outbound,
        }
    }

    fn from_proto(settings: pb::TicketSystemSettings) -> TicketSystemSettings {
        TicketSystemSettings {
            create: RequestTemplate::from_proto(settings.create).unwrap_or_default(),
            update: RequestTemplate::from_proto(settings.update),
            comment: RequestTemplate::from_proto(settings.comment),
            search: RequestTemplate::from_proto(settings.search),
            external_id_pointer: settings.external_id_pointer,
            search_id_pointer: settings.search_id_pointer,
            status_map: sorted(settings.status_map),
            priority_map: sorted(settings.priority_map),
            inbound: settings.inbound.map(|i| InboundMapping {
                external_id_pointer: i.external_id_pointer,
                status_pointer: i.status_pointer,
                priority_pointer: i.priority_pointer,
                subject_pointer: i.subject_pointer,
                comment_pointer: i.comment_pointer,
                comment_public_pointer: i.comment_public_pointer,
                status_map: sorted(i.status_map),
            }),
            outbound: settings.outbound,
        }
    }
}

/// The settings of a `crm` connector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmSettings {
    /// Fetches a contact's profile. Required. Variables: `contact.*`.
    pub lookup: RequestTemplate,
    /// Contact attribute to a JSON pointer into the lookup answer, such as
    /// `{"tier": "/customer/tier"}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// JSON pointer to the contact's name in the answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_pointer: String,
    /// Sent when a conversation of the contact is resolved. Variables: `contact.*`,
    /// `conversation.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<RequestTemplate>,
}

/// The settings of a `kb_feed` connector: a JSON array of knowledge-base entries at the base URL
/// plus `path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KbFeedSettings {
    /// The feed's path and query, appended to the base URL; empty reads the base URL itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Seconds between pulls, 1 to 86,400; 300 when left out.
    #[serde(default)]
    pub interval_secs: u32,
    /// Only entries in these locales are imported (`zh` matches every `zh-…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locales: Vec<String>,
    /// Only entries with at least one of these tags are imported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Never pulled: the feed is only pushed (`POST /v1/connectors/{connector_id}/kb-feed`).
    #[serde(default)]
    pub push_only: bool,
}

impl KbFeedSettings {
    fn into_proto(self) -> pb::KbFeedSettings {
        pb::KbFeedSettings {
            path: self.path,
            interval_secs: self.interval_secs,
            locales: self.locales,
            tags: self.tags,
            push_only: self.push_only,
        }
    }

    fn from_proto(settings: pb::KbFeedSettings) -> Self {
        KbFeedSettings {
            path: settings.path,
            interval_secs: settings.interval_secs,
            locales: settings.locales,
            tags: settings.tags,
            push_only: settings.push_only,
        }
    }
}

/// A connector's configuration, as sent to create or reconfigure it. Secrets (`auth`'s token,
/// password or key, `inbound_secret`) are write-only and never shown again.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Helpdesk",
    "kind": "ticket_system",
    "base_url": "https://helpdesk.example.com",
    "auth": {"bearer": {"token": "hd_live_4f9a…"}},
    "inbound_secret": "whs-helpdesk-2f8c1e9a7b",
    "ticket_system": {
        "create": {"method": "POST", "path": "/api/tickets",
                   "body": "{\"ticket\": {\"subject\": \"{{ticket.subject}}\", \"priority\": \"{{mapped.priority}}\", \"external_ref\": \"{{ticket.id}}\"}}"},
        "update": {"method": "PUT", "path": "/api/tickets/{{external.id}}",
                   "body": "{\"ticket\": {\"status\": \"{{mapped.status}}\"}}"},
        "search": {"method": "GET", "path": "/api/search?external_ref={{ticket.id}}"},
        "external_id_pointer": "/ticket/id",
        "search_id_pointer": "/results/0/id",
        "status_map": {"new": "NEW", "open": "OPEN", "solved": "RESOLVED", "closed": "CLOSED"},
        "priority_map": {"high": "P1", "normal": "P3"},
        "inbound": {"external_id_pointer": "/ticket/id", "status_pointer": "/ticket/status", "comment_pointer": "/comment/body"}
    }
}))]
pub struct ConnectorSettings {
    /// A name for people.
    pub name: String,
    /// What it connects to; cannot change.
    pub kind: ConnectorKind,
    /// `http://` or `https://`, without credentials, query or fragment.
    pub base_url: String,
    /// `false` pauses it: changes wait, and its webhooks are refused. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Per request, 100 to 60,000 milliseconds; 10,000 when left out.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
    /// Authentication; none when left out.
    #[serde(default)]
    #[schema(inline)]
    pub auth: Option<AuthSettings>,
    /// The HMAC-SHA256 secret the system signs its webhooks with (at least 16 characters); left
    /// out or empty keeps the stored one.
    #[serde(default)]
    pub inbound_secret: Option<String>,
    /// For `ticket_system`.
    #[serde(default)]
    pub ticket_system: Option<TicketSystemSettings>,
    /// For `crm`.
    #[serde(default)]
    pub crm: Option<CrmSettings>,
    /// For `kb_feed`.
    #[serde(default)]
    pub kb_feed: Option<KbFeedSettings>,
}

impl ConnectorSettings {
    pub(crate) fn into_proto(self, connector_id: String, command_id: String) -> pb::PutConnectorRequest {
        pb::PutConnectorRequest {
            command_id,
            connector_id,
            name: self.name,
            kind: self.kind.as_str().to_owned(),
            base_url: self.base_url,
            enabled: self.enabled,
            timeout_ms: self.timeout_ms.unwrap_or(0),
            auth: self.auth.and_then(AuthSettings::into_proto),
            inbound_secret: self.inbound_secret.unwrap_or_default(),
            ticket_system: self.ticket_system.map(TicketSystemSettings::into_proto),
            crm: self.crm.map(|c| pb::CrmSettings {
                lookup: Some(c.lookup.into_proto()),
                attributes: c.attributes.into_iter().collect(),
                name_pointer: c.name_pointer,
                summary: c.summary.map(RequestTemplate::into_proto),
            }),
            kb_feed: self.kb_feed.map(KbFeedSettings::into_proto),
        }
    }
}

/// How a connector authenticates, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConnectorAuth {
    /// `none`, `bearer`, `basic` or `api_key`.
    pub kind: String,
    /// For `basic`: the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For `api_key`: the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// A connector, without its secrets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "name": "Helpdesk",
    "kind": "ticket_system",
    "base_url": "https://helpdesk.example.com",
    "enabled": true,
    "timeout_ms": 10000,
    "auth": {"kind": "bearer"},
    "has_inbound_secret": true,
    "inbound_path": "/v1/inbound/tickets/ten_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e/cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "ticket_system": {
        "create": {"method": "POST", "path": "/api/tickets", "body": "{\"ticket\": {\"subject\": \"{{ticket.subject}}\"}}"},
        "external_id_pointer": "/ticket/id",
        "inbound": {"external_id_pointer": "/ticket/id", "status_pointer": "/ticket/status"},
        "outbound": true
    },
    "updated_at": "2025-05-20T08:30:00.123Z"
}))]
pub struct Connector {
    /// `cnx_…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it connects to.
    pub kind: ConnectorKind,
    /// The base URL.
    pub base_url: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Per request, in milliseconds.
    pub timeout_ms: u32,
    /// The authentication scheme, without the secret.
    pub auth: ConnectorAuth,
    /// Whether an inbound webhook secret is set.
    pub has_inbound_secret: bool,
    /// For `ticket_system`: where the system POSTs its signed webhooks, on this API's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_path: Option<String>,
    /// For `ticket_system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_system: Option<TicketSystemSettings>,
    /// For `crm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmSettings>,
    /// For `kb_feed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_feed: Option<KbFeedSettings>,
    /// When it was last configured (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl Connector {
    /// `connector` of `tenant_id`'s, whose tenant names its inbound path.
    pub(crate) fn from_proto(connector: pb::Connector, tenant_id: &str) -> Connector {
        let kind = match connector.kind.as_str() {
            "crm" => ConnectorKind::Crm,
            "kb_feed" => ConnectorKind::KbFeed,
            "ticket_system" => ConnectorKind::TicketSystem,
            other => {
                tracing::error!(kind = other, "the ticket service sent an unknown connector kind");
                ConnectorKind::TicketSystem
            }
        };
        Connector {
            inbound_path: (kind == ConnectorKind::TicketSystem)
                .then(|| format!("/v1/inbound/tickets/{tenant_id}/{}", connector.id)),
            id: connector.id,
            name: connector.name,
            kind,
            base_url: connector.base_url,
            enabled: connector.enabled,
            timeout_ms: connector.timeout_ms,
            auth: ConnectorAuth {
                kind: connector.auth_kind,
                username: non_empty(connector.auth_username),
                header: non_empty(connector.auth_header),
            },
            has_inbound_secret: connector.has_inbound_secret,
            ticket_system: connector.ticket_system.map(TicketSystemSettings::from_proto),
            crm: connector.crm.map(|c| CrmSettings {
                lookup: RequestTemplate::from_proto(c.lookup).unwrap_or_default(),
                attributes: sorted(c.attributes),
                name_pointer: c.name_pointer,
                summary: RequestTemplate::from_proto(c.summary),
            }),
            kb_feed: connector.kb_feed.map(KbFeedSettings::from_proto),
            updated_at: timestamp(connector.updated_at),
        }
    }
}

/// The tenant's connectors.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConnectorList {
    /// By id.
    pub connectors: Vec<Connector>,
}

/// One failed call of a connector.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConnectorError {
    /// When it happened (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// `create`, `update`, `comment`, `search`, `lookup`, `summary` or `inbound`.
    pub operation: String,
    /// What went wrong, without secrets.
    pub message: String,
    /// The HTTP status; absent when the system could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u32>,
}

/// A connector's health since the ticket-sync service started, and its pending work from the log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "connector_id": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "state": "failing",
    "successes": 41,
    "failures": 3,
    "consecutive_failures": 2,
    "last_success_at": "2025-05-20T08:30:00.123Z",
    "recent_errors": [{"at": "2025-05-20T08:35:02.5Z", "operation": "update", "message": "PUT https://helpdesk.example.com/api/tickets/48213: 503", "http_status": 503}],
    "pending_syncs": 2,
    "cache_hits": 0,
    "inbound_refused": 1
}))]
pub struct ConnectorHealth {
    /// The connector.
    pub connector_id: String,
    /// `ok` (the last call succeeded), `failing` (it failed), `idle` (no call yet) or `disabled`.
    pub state: String,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When a call last succeeded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    /// The latest errors, newest first (at most 10).
    pub recent_errors: Vec<ConnectorError>,
    /// Ticket changes scheduled for it and not sent yet.
    pub pending_syncs: u32,
    /// CRM profiles answered from the cache.
    pub cache_hits: u64,
    /// Inbound webhooks refused (bad signature or unreadable body).
    pub inbound_refused: u64,
    /// For `kb_feed`: the feed's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_feed: Option<KbFeedHealth>,
}

/// A knowledge-base feed's state: its last check since the ticket-sync service started, and its
/// last import as the log records it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KbFeedHealth {
    /// When the feed was last checked or pushed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_check_at: Option<String>,
    /// `imported`, `not_modified`, `refused` (not a valid feed; the previous entries stay) or
    /// `failed` (the feed or the knowledge base could not be reached); empty before any check.
    pub last_outcome: String,
    /// Entries the feed owns.
    pub entries: u32,
    /// The `ETag` of the last import.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    /// The `Last-Modified` of the last import.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_modified: String,
    /// When the last import was recorded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_import_at: Option<String>,
    /// When the next pull is due (RFC 3339); absent when the feed is not pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_pull_at: Option<String>,
}

/// A feed document was imported.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"created": 3, "updated": 1, "unchanged": 996, "disabled": 1, "entries": 1000}))]
pub struct KbFeedSyncResult {
    /// Entries created.
    pub created: u32,
    /// Entries that differed and were replaced.
    pub updated: u32,
    /// Entries equal to the stored ones.
    pub unchanged: u32,
    /// Entries the feed no longer has, disabled now.
    pub disabled: u32,
    /// Entries the feed owns now.
    pub entries: u32,
}

impl From<pb::KbFeedSyncResult> for KbFeedSyncResult {
    fn from(r: pb::KbFeedSyncResult) -> Self {
        KbFeedSyncResult {
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            disabled: r.disabled,
            entries: r.entries,
        }
    }
}

impl From<pb::ConnectorHealth> for ConnectorHealth {
    fn from(health: pb::ConnectorHealth) -> Self {
        ConnectorHealth {
            connector_id: health.connector_id,
            state: health.state,
            successes: health.successes,
            failures: health.failures,
            consecutive_failures: health.consecutive_failures,
            last_success_at: time(health.last_success_at),
            recent_errors: health
                .recent_errors
                .into_iter()
                .map(|e| ConnectorError {
                    at: timestamp(e.at),
                    operation: e.operation,
                    message: e.message,
                    http_status: (e.http_status != 0).then_some(e.http_status),
                })
                .collect(),
            pending_syncs: health.pending_syncs,
            cache_hits: health.cache_hits,
            inbound_refused: health.inbound_refused,
            kb_feed: health.kb_feed.map(|f| KbFeedHealth {
                last_check_at: time(f.last_check_at),
                last_outcome: f.last_outcome,
                entries: f.entries,
                etag: f.etag,
                last_modified: f.last_modified,
                last_import_at: time(f.last_import_at),
                next_pull_at: time(f.next_pull_at),
            }),
        }
    }
}

/// Options of a CRM lookup.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh": true}))]
pub struct LookupProfile {
    /// Ask the CRM even when the cache has a fresh profile.
    #[serde(default)]
    pub refresh: bool,
}

/// A contact's profile from the CRM; its attributes are written to the contact.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "connector_id": "cnx_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "attributes": {"tier": "vip", "open_orders": "2"},
    "name": "Ada Lovelace",
    "cached": false,
    "fetched_at": "2025-05-20T08:30:00.123Z"
}))]
pub struct ContactProfile {
    /// The contact.
    pub contact_id: String,
    /// The CRM connector it came from.
    pub connector_id: String,
    /// The mapped attributes, as written to the contact.
    pub attributes: BTreeMap<String, String>,
    /// The name, when the CRM gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `true` when answered from the cache.
    pub cached: bool,
    /// When the CRM answered it (RFC 3339).
    #[schema(format = DateTime)]
    pub fetched_at: String,
}

impl From<pb::ContactProfile> for ContactProfile {
    fn from(profile: pb::ContactProfile) -> Self {
        ContactProfile {
            contact_id: profile.contact_id,
            connector_id: profile.connector_id,
            attributes: sorted(profile.attributes),
            name: non_empty(profile.name),
            cached: profile.cached,
            fetched_at: timestamp(profile.fetched_at),
        }
    }
}

/// What an inbound webhook changed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"ticket_id": "tkt_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e", "changed": true}))]
pub struct InboundUpdate {
    /// The ticket it was about.
    pub ticket_id: String,
    /// `false` when it changed nothing (a redelivery, or the ticket already was as it says).
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_read_as_the_guide_writes_it_and_secrets_stay_optional() {
        let settings: ConnectorSettings = serde_json::from_value(json!({
            "name": "Helpdesk", "kind": "ticket_system", "base_url": "https://h.example",
            "auth": {"bearer": {"token": "t0k3n"}},
            "ticket_system": {"create": {"method": "POST", "path": "/t"}}
        }))
        .expect("valid");
        let request = settings.into_proto(String::new(), "cmd".into());
        assert!(request.enabled);
        assert!(request.ticket_system.as_ref().expect("settings").outbound);
        match request.auth.and_then(|a| a.kind) {
            Some(pb::auth::Kind::Bearer(b)) => assert_eq!(b.token, "t0k3n"),
            other => panic!("{other:?}"),
        }
        let kept: AuthSettings = serde_json::from_value(json!({"api_key": {"header": "X-Key"}})).expect("valid");
        match kept.into_proto().and_then(|a| a.kind) {
            Some(pb::auth::Kind::ApiKey(k)) => assert_eq!((k.header.as_str(), k.key.as_str()), ("X-Key", "")),
            other => panic!("{other:?}"),
        }
        assert!(
            serde_json::from_value::<AuthSettings>(json!("none"))
                .expect("none")
                .into_proto()
                .is_none()
        );
        let error = serde_json::from_value::<AuthSettings>(json!({"bearer": {"tokn": "x"}})).unwrap_err();
        assert!(error.to_string().contains("tokn"), "{error}");
    }

    #[test]
    fn history_leaves_out_what_did_not_change() {
        let entry = HistoryEntry::from(pb::TicketHistoryEntry {
            event_id: "e1".into(),
            occurred_at: None,
            change: Some(pb::ticket_history_entry::Change::Updated(pb::TicketUpdated {
                status: Some("solved".into()),
                previous_status: "open".into(),
                origin: "cnx_1".into(),
                actor: Some(pb::Actor {
                    kind: "connector".into(),
                    id: "cnx_1".into(),
                }),
                ..Default::default()
            })),
        });
        assert_eq!(entry.kind, "updated");
        assert_eq!(
            entry.change,
            json!({"status": "solved", "previous_status": "open", "origin": "cnx_1",
                   "actor": {"kind": "connector", "id": "cnx_1"}})
        );
    }

    #[test]
    fn ticket_statuses_are_lowercase_names() {
        for (name, status) in TicketStatus::ALL {
            assert_eq!(serde_json::to_value(status).expect("json"), name);
            assert_eq!(status.as_str(), name);
        }
    }
}
