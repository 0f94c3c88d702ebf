//! The ticket aggregate, pure: `decide` turns a command and the ticket as the log has it into
//! events, `evolve` folds an event into the ticket. Time, ids and the tenant's outbound
//! connectors come in through the command, so both are deterministic and tested without IO.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use yy_eventlog::Payload;
use yy_proto::ticket::v1 as pb;

pub const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
pub const STATUSES: &[&str] = &["new", "open", "pending", "solved", "closed"];
pub const ACTOR_KINDS: &[&str] = &["agent", "flow", "rule", "api", "connector", "system"];
pub const MAX_SUBJECT_CHARS: usize = 500;
pub const MAX_TEXT_CHARS: usize = 65_536;
pub const MAX_TAGS: usize = 50;
pub const MAX_CUSTOM_FIELDS: usize = 100;
pub const MAX_FIELD_VALUE_CHARS: usize = 4096;

/// The statuses a ticket may move to from `from`. Closed is final: a closed ticket's follow-up
/// is a new ticket, as in most ticket systems, so reports on closed tickets never change.
pub fn allowed_transitions(from: &str) -> &'static [&'static str] {
    match from {
        "new" => &["open", "pending", "solved"],
        "open" => &["pending", "solved"],
        "pending" => &["open", "solved"],
        "solved" => &["open", "closed"],
        _ => &[],
    }
}

/// Why a command was refused. `field` names the request field for validation failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("ticket {0} not found")]
    NotFound(String),
    #[error("{0}")]
    InvalidState(String),
}

fn invalid(field: &str, reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: String,
    pub id: String,
}

impl Actor {
    pub fn from_proto(actor: Option<&pb::Actor>, default_kind: &str) -> Actor {
        match actor {
            Some(a) if !a.kind.is_empty() => Actor {
                kind: a.kind.clone(),
                id: a.id.clone(),
            },
            Some(a) => Actor {
                kind: default_kind.to_owned(),
                id: a.id.clone(),
            },
            None => Actor {
                kind: default_kind.to_owned(),
                id: String::new(),
            },
        }
    }

    pub fn connector(connector_id: &str) -> Actor {
        Actor {
            kind: "connector".into(),
            id: connector_id.to_owned(),
        }
    }

    pub fn to_proto(&self) -> pb::Actor {
        pb::Actor {
            kind: self.kind.clone(),
            id: self.id.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub contact_id: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub public: bool,
    pub author: Actor,
    pub origin: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    Create,
    Update,
    Comment,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Comment => "comment",
        }
    }

    pub fn parse(name: &str) -> Option<Operation> {
        match name {
            "create" => Some(Operation::Create),
            "update" => Some(Operation::Update),
            "comment" => Some(Operation::Comment),
            _ => None,
        }
    }
}

/// A change waiting to be sent to an external system (the outbox entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSync {
    pub sync_id: String,
    pub connector_id: String,
    pub operation: Operation,
    pub comment_id: String,
    pub attempts: u32,
    /// When the next attempt is due; the time it was scheduled for the first attempt.
    pub due_at_ms: i64,
    pub last_error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ticket {
    pub id: String,
    pub subject: String,
    pub description: String,
    pub requester: Requester,
    pub priority: String,
    pub status: String,
    pub assignee_id: String,
    pub group: String,
    pub tags: BTreeSet<String>,
    pub custom_fields: BTreeMap<String, String>,
    pub due_at_ms: Option<i64>,
    pub conversations: Vec<String>,
    pub comments: Vec<Comment>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: Actor,
    /// Connector id to the ticket's id in that external system.
    pub external: BTreeMap<String, String>,
    /// The outbox, in the order the changes were made.
    pub pending: Vec<PendingSync>,
    /// Syncs scheduled so far, for the next sync's id.
    pub syncs_scheduled: u32,
}

impl Ticket {
    pub fn exists(&self) -> bool {
        !self.id.is_empty()
    }

    /// Whether changes of this ticket are (to be) sent to the connector: it was created there,
    /// or its creation there is pending.
    pub fn synced_with(&self, connector_id: &str) -> bool {
        self.external.contains_key(connector_id)
            || self
                .pending
                .iter()
                .any(|p| p.connector_id == connector_id && p.operation == Operation::Create)
    }
}

/// An enabled outbound ticket-system connector of the tenant, and what it can be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub connector_id: String,
    pub update: bool,
    pub comment: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTicket {
    pub subject: String,
    pub description: String,
    pub requester: Requester,
    pub priority: String,
    pub assignee_id: String,
    pub group: String,
    pub tags: Vec<String>,
    pub custom_fields: BTreeMap<String, String>,
    pub conversation_id: String,
    pub actor: Actor,
    pub origin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub subject: Option<String>,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub assignee_id: Option<String>,
    pub group: Option<String>,
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub set_custom_fields: BTreeMap<String, String>,
    pub remove_custom_fields: Vec<String>,
    pub actor: Actor,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create {
        ticket_id: String,
        ticket: NewTicket,
    },
    Update(Changes),
    Comment {
        comment_id: String,
        body: String,
        public: bool,
        author: Actor,
        origin: String,
    },
    Link {
        conversation_id: String,
        actor: Actor,
    },
    Unlink {
        conversation_id: String,
        actor: Actor,
    },
    SyncSucceeded {
        sync_id: String,
        external_id: String,
        reconciled: bool,
        http_status: u32,
    },
    SyncFailed {
        sync_id: String,
        error: String,
        http_status: u32,
        next_attempt_at_ms: i64,
    },
    SyncAbandoned {
        sync_id: String,
        reason: String,
    },
}

/// What a command is decided with besides the ticket: time, the SLA policy and the tenant's
/// outbound connectors.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub now_ms: i64,
    /// Priority to minutes until due.
    pub sla_minutes: BTreeMap<String, u32>,
    pub targets: Vec<Target>,
}

pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos / 1_000_000))
}

fn due_at(ctx: &Context, created_at_ms: i64, priority: &str) -> Option<i64> {
    ctx.sla_minutes
        .get(priority)
        .map(|minutes| created_at_ms.saturating_add(i64::from(*minutes) * 60_000))
}

fn check_len(field: &str, value: &str, max: usize, required: bool) -> Result<(), Rejection> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "required"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(())
}

fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), Rejection> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be one of {}", allowed.join(", "))))
    }
}

fn check_tag(field: &str, tag: &str) -> Result<(), Rejection> {
    let ok = (1..=64).contains(&tag.chars().count()) && !tag.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, format!("tag {tag:?}: 1-64 characters without spaces")))
    }
}

fn check_field_name(field: &str, name: &str) -> Result<(), Rejection> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("custom field name {name:?}: 1-64 letters, digits, '_' or '-'"),
        ))
    }
}

fn check_custom_fields(field: &str, fields: &BTreeMap<String, String>) -> Result<(), Rejection> {
    if fields.len() > MAX_CUSTOM_FIELDS {
        return Err(invalid(field, format!("at most {MAX_CUSTOM_FIELDS}")));
    }
    for (name, value) in fields {
        check_field_name(field, name)?;
        if value.chars().count() > MAX_FIELD_VALUE_CHARS {
            return Err(invalid(
                &format!("{field}.{name}"),
                format!("at most {MAX_FIELD_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

fn check_actor(field: &str, actor: &Actor) -> Result<(), Rejection> {
    check_one_of(&format!("{field}.kind"), &actor.kind, ACTOR_KINDS)?;
    check_len(&format!("{field}.id"), &actor.id, 128, false)
}

fn check_conversation_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.starts_with("conv_") && yy_eventlog::validate_token("conversation", id).is_ok() {
        Ok(())
    } else {
        Err(invalid(field, "a conversation id (\"conv_…\")"))
    }
}

/// The outbox entries a local change schedules: one per connector that should hear of it, never
/// the connector the change came from.
fn schedule(
    ticket: &Ticket,
    ctx: &Context,
    origin: &str,
    operation: Operation,
    comment_id: &str,
    will_be_synced: impl Fn(&str) -> bool,
) -> Vec<Payload> {
    let mut next = ticket.syncs_scheduled;
    ctx.targets
        .iter()
        .filter(|t| t.connector_id != origin)
        .filter(|t| match operation {
            Operation::Create => true,
            Operation::Update => t.update && will_be_synced(&t.connector_id),
            Operation::Comment => t.comment && will_be_synced(&t.connector_id),
        })
        .map(|t| {
            next += 1;
            Payload::TicketSyncScheduled(pb::TicketSyncScheduled {
                sync_id: format!("{}-{next}", ticket_suffix(&ticket.id)),
                connector_id: t.connector_id.clone(),
                operation: operation.as_str().into(),
                comment_id: comment_id.to_owned(),
            })
        })
        .collect()
}

fn ticket_suffix(id: &str) -> &str {
    id.strip_prefix("tkt_").unwrap_or(id)
}

fn sorted_unique(tags: &[String]) -> Vec<String> {
    tags.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

pub fn decide(ticket: &Ticket, command: Command, ctx: &Context) -> Result<Vec<Payload>, Rejection> {
    match command {
        Command::Create { ticket_id, ticket: new } => {
            if ticket.exists() {
                // A retried create: the ticket is there already.
                return Ok(Vec::new());
            }
            check_len("subject", &new.subject, MAX_SUBJECT_CHARS, true)?;
            check_len("description", &new.description, MAX_TEXT_CHARS, false)?;
            check_len("requester.name", &new.requester.name, 200, false)?;
            check_len("requester.email", &new.requester.email, 320, false)?;
            check_len("requester.contact_id", &new.requester.contact_id, 128, false)?;
            check_one_of("priority", &new.priority, PRIORITIES)?;
            check_len("assignee_id", &new.assignee_id, 128, false)?;
            check_len("group", &new.group, 128, false)?;
            if new.tags.len() > MAX_TAGS {
                return Err(invalid("tags", format!("at most {MAX_TAGS}")));
            }
            for tag in &new.tags {
                check_tag("tags", tag)?;
            }
            check_custom_fields("custom_fields", &new.custom_fields)?;
            if !new.conversation_id.is_empty() {
                check_conversation_id("conversation_id", &new.conversation_id)?;
            }
            check_actor("created_by", &new.actor)?;
            let created = Payload::TicketCreated(pb::TicketCreated {
                subject: new.subject.trim().to_owned(),
                description: new.description,
                requester: Some(pb::Requester {
                    contact_id: new.requester.contact_id,
                    name: new.requester.name,
                    email: new.requester.email,
                }),
                priority: new.priority.clone(),
                assignee_id: new.assignee_id,
                group: new.group,
                tags: sorted_unique(&new.tags),
                custom_fields: new.custom_fields.into_iter().collect(),
                due_at: due_at(ctx, ctx.now_ms, &new.priority).map(timestamp),
                conversation_id: new.conversation_id,
                actor: Some(new.actor.to_proto()),
                origin: new.origin.clone(),
            });
            let fresh = Ticket {
                id: ticket_id,
                ..Ticket::default()
            };
            let mut events = vec![created];
            events.extend(schedule(&fresh, ctx, &new.origin, Operation::Create, "", |_| true));
            Ok(events)
        }
        _ if !ticket.exists() => Err(Rejection::NotFound(String::new())),
        Command::Update(changes) => decide_update(ticket, changes, ctx),
        Command::Comment {
            comment_id,
            body,
            public,
            author,
            origin,
        } => {
            if ticket.comments.iter().any(|c| c.id == comment_id) {
                return Ok(Vec::new());
            }
            check_len("body", &body, MAX_TEXT_CHARS, true)?;
            check_actor("author", &author)?;
            let mut events = vec![Payload::TicketCommentAdded(pb::TicketCommentAdded {
                comment_id: comment_id.clone(),
                body,
                public,
                author: Some(author.to_proto()),
                origin: origin.clone(),
            })];
            events.extend(schedule(ticket, ctx, &origin, Operation::Comment, &comment_id, |c| {
                ticket.synced_with(c)
            }));
            Ok(events)
        }
        Command::Link { conversation_id, actor } => {
            check_conversation_id("conversation_id", &conversation_id)?;
            check_actor("actor", &actor)?;
            if ticket.conversations.contains(&conversation_id) {
                return Ok(Vec::new());
            }
            Ok(vec![Payload::TicketConversationLinked(pb::TicketConversationLinked {
                conversation_id,
                actor: Some(actor.to_proto()),
            })])
        }
        Command::Unlink { conversation_id, actor } => {
            check_conversation_id("conversation_id", &conversation_id)?;
            check_actor("actor", &actor)?;
            if !ticket.conversations.contains(&conversation_id) {
                return Ok(Vec::new());
            }
            Ok(vec![Payload::TicketConversationUnlinked(
                pb::TicketConversationUnlinked {
                    conversation_id,
                    actor: Some(actor.to_proto()),
                },
            )])
        }
        Command::SyncSucceeded {
            sync_id,
            external_id,
            reconciled,
            http_status,
        } => {
            // An outcome for a sync no longer pending (another attempt recorded it first) changes nothing.
            let Some(pending) = ticket.pending.iter().find(|p| p.sync_id == sync_id) else {
                return Ok(Vec::new());
            };
            Ok(vec![Payload::TicketSyncSucceeded(pb::TicketSyncSucceeded {
                sync_id,
                connector_id: pending.connector_id.clone(),
                external_id,
                reconciled,
                attempt: pending.attempts + 1,
                http_status,
            })])
        }
        Command::SyncFailed {
            sync_id,
            error,
            http_status,
            next_attempt_at_ms,
        } => {
            let Some(pending) = ticket.pending.iter().find(|p| p.sync_id == sync_id) else {
                return Ok(Vec::new());
            };
            Ok(vec![Payload::TicketSyncFailed(pb::TicketSyncFailed {
                sync_id,
                connector_id: pending.connector_id.clone(),
                attempt: pending.attempts + 1,
                error,
                http_status,
                next_attempt_at: Some(timestamp(next_attempt_at_ms)),
            })])
        }
        Command::SyncAbandoned { sync_id, reason } => {
            let Some(pending) = ticket.pending.iter().find(|p| p.sync_id == sync_id) else {
                return Ok(Vec::new());
            };
            Ok(vec![Payload::TicketSyncAbandoned(pb::TicketSyncAbandoned {
                sync_id,
                connector_id: pending.connector_id.clone(),
                reason,
            })])
        }
    }
}

fn decide_update(ticket: &Ticket, changes: Changes, ctx: &Context) -> Result<Vec<Payload>, Rejection> {
    check_actor("actor", &changes.actor)?;
    let mut updated = pb::TicketUpdated {
        actor: Some(changes.actor.to_proto()),
        origin: changes.origin.clone(),
        ..Default::default()
    };
    if let Some(subject) = changes.subject {
        check_len("subject", &subject, MAX_SUBJECT_CHARS, true)?;
        let subject = subject.trim().to_owned();
        if subject != ticket.subject {
            updated.subject = Some(subject);
        }
    }
    if let Some(description) = changes.description {
        check_len("description", &description, MAX_TEXT_CHARS, false)?;
        if description != ticket.description {
            updated.description = Some(description);
        }
    }
    if let Some(priority) = changes.priority {
        check_one_of("priority", &priority, PRIORITIES)?;
        if priority != ticket.priority {
            let due = due_at(ctx, ticket.created_at_ms, &priority);
            if due != ticket.due_at_ms {
                updated.due_at = due.map(timestamp);
            }
            updated.priority = Some(priority);
        }
    }
    if let Some(status) = changes.status {
        check_one_of("status", &status, STATUSES)?;
        if status != ticket.status {
            if !allowed_transitions(&ticket.status).contains(&status.as_str()) {
                return Err(Rejection::InvalidState(format!(
                    "status: a {} ticket cannot become {status} (allowed: {})",
                    ticket.status,
                    allowed_transitions(&ticket.status).join(", ")
                )));
            }
            updated.previous_status = ticket.status.clone();
            updated.status = Some(status);
        }
    }
    if ticket.status == "closed" {
        return Err(Rejection::InvalidState(format!(
            "ticket {} is closed and cannot change",
            ticket.id
        )));
    }
    if let Some(assignee) = changes.assignee_id {
        check_len("assignee_id", &assignee, 128, false)?;
        if assignee != ticket.assignee_id {
            updated.assignee_id = Some(assignee);
        }
    }
    if let Some(group) = changes.group {
        check_len("group", &group, 128, false)?;
        if group != ticket.group {
            updated.group = Some(group);
        }
    }
    for tag in &changes.add_tags {
        check_tag("add_tags", tag)?;
    }
    for tag in &changes.remove_tags {
        check_tag("remove_tags", tag)?;
    }
    updated.tags_added = sorted_unique(&changes.add_tags)
        .into_iter()
        .filter(|t| !ticket.tags.contains(t) && !changes.remove_tags.contains(t))
        .collect();
    updated.tags_removed = sorted_unique(&changes.remove_tags)
        .into_iter()
        .filter(|t| ticket.tags.contains(t))
        .collect();
    if ticket.tags.len() + updated.tags_added.len() - updated.tags_removed.len() > MAX_TAGS {
        return Err(invalid("add_tags", format!("a ticket has at most {MAX_TAGS} tags")));
    }
    check_custom_fields("set_custom_fields", &changes.set_custom_fields)?;
    for name in &changes.remove_custom_fields {
        check_field_name("remove_custom_fields", name)?;
    }
    updated.custom_fields_set = changes
        .set_custom_fields
        .into_iter()
        .filter(|(k, v)| ticket.custom_fields.get(k) != Some(v))
        .collect();
    updated.custom_fields_removed = changes
        .remove_custom_fields
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| ticket.custom_fields.contains_key(k) && !updated.custom_fields_set.contains_key(k))
        .collect();
    let kept_fields = ticket
        .custom_fields
        .keys()
        .filter(|k| !updated.custom_fields_removed.contains(k))
        .chain(updated.custom_fields_set.keys())
        .collect::<BTreeSet<_>>()
        .len();
    if kept_fields > MAX_CUSTOM_FIELDS {
        return Err(invalid(
            "set_custom_fields",
            format!("a ticket has at most {MAX_CUSTOM_FIELDS} custom fields"),
        ));
    }
    let changed = updated.subject.is_some()
        || updated.description.is_some()
        || updated.priority.is_some()
        || updated.status.is_some()
        || updated.assignee_id.is_some()
        || updated.group.is_some()
        || !updated.tags_added.is_empty()
        || !updated.tags_removed.is_empty()
        || !updated.custom_fields_set.is_empty()
        || !updated.custom_fields_removed.is_empty();
    if !changed {
        return Ok(Vec::new());
    }
    let mut events = vec![Payload::TicketUpdated(updated)];
    events.extend(schedule(ticket, ctx, &changes.origin, Operation::Update, "", |c| {
        ticket.synced_with(c)
    }));
    Ok(events)
}

/// Folds one event of the ticket aggregate into it; events of other kinds leave it as it is.
pub fn evolve(ticket: &mut Ticket, ticket_id: &str, occurred_at_ms: i64, payload: &Payload) {
    match payload {
        Payload::TicketCreated(e) => {
            let requester = e.requester.clone().unwrap_or_default();
            *ticket = Ticket {
                id: ticket_id.to_owned(),
                subject: e.subject.clone(),
                description: e.description.clone(),
                requester: Requester {
                    contact_id: requester.contact_id,
                    name: requester.name,
                    email: requester.email,
                },
                priority: e.priority.clone(),
                status: "new".into(),
                assignee_id: e.assignee_id.clone(),
                group: e.group.clone(),
                tags: e.tags.iter().cloned().collect(),
                custom_fields: e.custom_fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                due_at_ms: e.due_at.as_ref().map(millis),
                conversations: if e.conversation_id.is_empty() {
                    Vec::new()
                } else {
                    vec![e.conversation_id.clone()]
                },
                created_at_ms: occurred_at_ms,
                updated_at_ms: occurred_at_ms,
                created_by: Actor::from_proto(e.actor.as_ref(), "api"),
                ..Ticket::default()
            };
            return;
        }
        Payload::TicketUpdated(e) => {
            if let Some(v) = &e.subject {
                ticket.subject = v.clone();
            }
            if let Some(v) = &e.description {
                ticket.description = v.clone();
            }
            if let Some(v) = &e.priority {
                ticket.priority = v.clone();
            }
            if let Some(v) = &e.status {
                ticket.status = v.clone();
            }
            if let Some(v) = &e.assignee_id {
                ticket.assignee_id = v.clone();
            }
            if let Some(v) = &e.group {
                ticket.group = v.clone();
            }
            for t in &e.tags_removed {
                ticket.tags.remove(t);
            }
            ticket.tags.extend(e.tags_added.iter().cloned());
            for k in &e.custom_fields_removed {
                ticket.custom_fields.remove(k);
            }
            for (k, v) in &e.custom_fields_set {
                ticket.custom_fields.insert(k.clone(), v.clone());
            }
            if let Some(due) = &e.due_at {
                ticket.due_at_ms = Some(millis(due));
            }
        }
        Payload::TicketCommentAdded(e) => ticket.comments.push(Comment {
            id: e.comment_id.clone(),
            body: e.body.clone(),
            public: e.public,
            author: Actor::from_proto(e.author.as_ref(), "api"),
            origin: e.origin.clone(),
            created_at_ms: occurred_at_ms,
        }),
        Payload::TicketConversationLinked(e) => {
            if !ticket.conversations.contains(&e.conversation_id) {
                ticket.conversations.push(e.conversation_id.clone());
            }
        }
        Payload::TicketConversationUnlinked(e) => ticket.conversations.retain(|c| c != &e.conversation_id),
        Payload::TicketSyncScheduled(e) => {
            ticket.syncs_scheduled += 1;
            if let Some(operation) = Operation::parse(&e.operation) {
                ticket.pending.push(PendingSync {
                    sync_id: e.sync_id.clone(),
                    connector_id: e.connector_id.clone(),
                    operation,
                    comment_id: e.comment_id.clone(),
                    attempts: 0,
                    due_at_ms: occurred_at_ms,
                    last_error: String::new(),
                });
            }
            return;
        }
        Payload::TicketSyncSucceeded(e) => {
            let created = ticket
                .pending
                .iter()
                .any(|p| p.sync_id == e.sync_id && p.operation == Operation::Create);
            if created && !e.external_id.is_empty() {
                ticket.external.insert(e.connector_id.clone(), e.external_id.clone());
            }
            ticket.pending.retain(|p| p.sync_id != e.sync_id);
            return;
        }
        Payload::TicketSyncFailed(e) => {
            if let Some(p) = ticket.pending.iter_mut().find(|p| p.sync_id == e.sync_id) {
                p.attempts = e.attempt;
                p.last_error = e.error.clone();
                p.due_at_ms = e.next_attempt_at.as_ref().map_or(occurred_at_ms, millis);
            }
            return;
        }
        Payload::TicketSyncAbandoned(e) => {
            ticket.pending.retain(|p| p.sync_id != e.sync_id);
            return;
        }
        _ => return,
    }
    ticket.updated_at_ms = occurred_at_ms;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn ctx() -> Context {
        Context {
            now_ms: NOW,
            sla_minutes: BTreeMap::from([("high".to_owned(), 60)]),
            targets: vec![Target {
                connector_id: "cnx_ext".into(),
                update: true,
                comment: true,
            }],
        }
    }

    fn agent() -> Actor {
        Actor {
            kind: "agent".into(),
            id: "agt_1".into(),
        }
    }

    fn new_ticket() -> NewTicket {
        NewTicket {
            subject: "Parcel lost".into(),
            description: "Order 42 never arrived".into(),
            priority: "high".into(),
            tags: vec!["shipping".into(), "shipping".into()],
            conversation_id: "conv_1".into(),
            actor: agent(),
            ..NewTicket::default()
        }
    }

    /// Given these events, the ticket they make.
    fn given(events: &[Payload]) -> Ticket {
        let mut ticket = Ticket::default();
        for (i, e) in events.iter().enumerate() {
            evolve(&mut ticket, "tkt_1", NOW + i as i64, e);
        }
        ticket
    }

    fn created() -> Vec<Payload> {
        decide(
            &Ticket::default(),
            Command::Create {
                ticket_id: "tkt_1".into(),
                ticket: new_ticket(),
            },
            &ctx(),
        )
        .unwrap()
    }

    fn apply(mut ticket: Ticket, events: &[Payload]) -> Ticket {
        for e in events {
            evolve(&mut ticket, "tkt_1", NOW + 10, e);
        }
        ticket
    }

    #[test]
    fn create_schedules_the_external_create_and_sets_the_due_time() {
        let events = created();
        let Payload::TicketCreated(c) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(c.tags, vec!["shipping"]);
        assert_eq!(c.due_at.as_ref().map(millis), Some(NOW + 3_600_000));
        let Payload::TicketSyncScheduled(s) = &events[1] else {
            panic!("{events:?}")
        };
        assert_eq!((s.operation.as_str(), s.connector_id.as_str()), ("create", "cnx_ext"));
        let ticket = given(&events);
        assert_eq!(ticket.status, "new");
        assert_eq!(ticket.conversations, vec!["conv_1"]);
        assert_eq!(ticket.pending.len(), 1);
        // A retried create changes nothing.
        let again = decide(
            &ticket,
            Command::Create {
                ticket_id: "tkt_1".into(),
                ticket: new_ticket(),
            },
            &ctx(),
        )
        .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn create_names_the_invalid_field() {
        let mut bad = new_ticket();
        bad.priority = "asap".into();
        let error = decide(
            &Ticket::default(),
            Command::Create {
                ticket_id: "tkt_1".into(),
                ticket: bad,
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(
            matches!(&error, Rejection::Invalid { field, .. } if field == "priority"),
            "{error}"
        );
        let mut bad = new_ticket();
        bad.custom_fields.insert("bad name".into(), "x".into());
        let error = decide(
            &Ticket::default(),
            Command::Create {
                ticket_id: "tkt_1".into(),
                ticket: bad,
            },
            &ctx(),
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("custom_fields"), "{error}");
    }

    #[test]
    fn status_transitions_are_validated() {
        let ticket = given(&created());
        let to = |ticket: &Ticket, status: &str| {
            decide(
                ticket,
                Command::Update(Changes {
                    status: Some(status.into()),
                    actor: agent(),
                    ..Changes::default()
                }),
                &ctx(),
            )
        };
        assert!(matches!(to(&ticket, "closed"), Err(Rejection::InvalidState(_))));
        let solved = apply(ticket, &to(&given(&created()), "solved").unwrap());
        assert_eq!(solved.status, "solved");
        let closed = apply(solved.clone(), &to(&solved, "closed").unwrap());
        assert!(matches!(to(&closed, "open"), Err(Rejection::InvalidState(_))));
        assert!(to(&closed, "closed").is_err(), "a closed ticket takes no change");
    }

    #[test]
    fn an_update_from_a_connector_is_not_sent_back_to_it() {
        let ticket = given(&created());
        let sync_id = ticket.pending[0].sync_id.clone();
        let ticket = apply(
            ticket,
            &[Payload::TicketSyncSucceeded(pb::TicketSyncSucceeded {
                sync_id,
                connector_id: "cnx_ext".into(),
                external_id: "ext-9".into(),
                ..Default::default()
            })],
        );
        assert_eq!(ticket.external.get("cnx_ext").map(String::as_str), Some("ext-9"));
        assert!(ticket.pending.is_empty());
        let inbound = decide(
            &ticket,
            Command::Update(Changes {
                status: Some("solved".into()),
                actor: Actor::connector("cnx_ext"),
                origin: "cnx_ext".into(),
                ..Changes::default()
            }),
            &ctx(),
        )
        .unwrap();
        assert_eq!(inbound.len(), 1, "no sync scheduled: {inbound:?}");
        let local = decide(
            &ticket,
            Command::Update(Changes {
                priority: Some("low".into()),
                actor: agent(),
                ..Changes::default()
            }),
            &ctx(),
        )
        .unwrap();
        assert!(matches!(&local[1], Payload::TicketSyncScheduled(s) if s.operation == "update"));
        // Unchanged fields produce no event at all.
        let same = decide(
            &ticket,
            Command::Update(Changes {
                priority: Some("high".into()),
                actor: agent(),
                ..Changes::default()
            }),
            &ctx(),
        )
        .unwrap();
        assert!(same.is_empty());
    }

    #[test]
    fn failures_keep_the_sync_pending_until_it_succeeds() {
        let ticket = given(&created());
        let sync_id = ticket.pending[0].sync_id.clone();
        let failed = decide(
            &ticket,
            Command::SyncFailed {
                sync_id: sync_id.clone(),
                error: "503".into(),
                http_status: 503,
                next_attempt_at_ms: NOW + 5000,
            },
            &ctx(),
        )
        .unwrap();
        let ticket = apply(ticket, &failed);
        assert_eq!(ticket.pending[0].attempts, 1);
        assert_eq!(ticket.pending[0].due_at_ms, NOW + 5000);
        let done = decide(
            &ticket,
            Command::SyncSucceeded {
                sync_id: sync_id.clone(),
                external_id: "ext-1".into(),
                reconciled: true,
                http_status: 200,
            },
            &ctx(),
        )
        .unwrap();
        assert!(matches!(&done[0], Payload::TicketSyncSucceeded(s) if s.attempt == 2 && s.reconciled));
        let ticket = apply(ticket, &done);
        // A late outcome of the same sync records nothing.
        let late = decide(
            &ticket,
            Command::SyncSucceeded {
                sync_id,
                external_id: "ext-1".into(),
                reconciled: false,
                http_status: 201,
            },
            &ctx(),
        )
        .unwrap();
        assert!(late.is_empty());
    }

    #[test]
    fn comments_links_and_missing_tickets() {
        let ticket = given(&created());
        let events = decide(
            &ticket,
            Command::Comment {
                comment_id: "cmt_1".into(),
                body: "We are on it".into(),
                public: true,
                author: agent(),
                origin: String::new(),
            },
            &ctx(),
        )
        .unwrap();
        assert!(matches!(&events[1], Payload::TicketSyncScheduled(s) if s.comment_id == "cmt_1"));
        let ticket = apply(ticket, &events);
        assert_eq!(ticket.comments.len(), 1);
        let link = decide(
            &ticket,
            Command::Link {
                conversation_id: "conv_2".into(),
                actor: agent(),
            },
            &ctx(),
        )
        .unwrap();
        let ticket = apply(ticket, &link);
        assert_eq!(ticket.conversations, vec!["conv_1", "conv_2"]);
        let missing = decide(
            &Ticket::default(),
            Command::Link {
                conversation_id: "conv_2".into(),
                actor: agent(),
            },
            &ctx(),
        );
        assert!(matches!(missing, Err(Rejection::NotFound(_))));
    }
}
