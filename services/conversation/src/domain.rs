//! The conversation and contact aggregates: pure and synchronous. `decide` turns a command and
//! the current state into events or a rejection; `evolve` folds an event into the state. Time,
//! ids and limits come in with the command, so every rule is tested without IO or a clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use yy_eventlog::Payload;
use yy_proto::conversation::v1::{
    ChannelIdentity, ContactCreated, ContactIdentityLinked, ContactMerged, ContactUpdated,
    ConversationAttributesChanged, ConversationOpened, ConversationPriorityChanged, ConversationStatus,
    ConversationStatusChanged, ConversationTagsChanged, CsatSubmitted, MessagePosted, Priority, RichContent,
};

/// Why a command was refused. Each maps to one gRPC code and one stable `yy-error` slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Malformed input; names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as named in the API.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A message's text exceeds the configured limit.
    #[error("text is {actual} bytes; the limit is {limit} bytes")]
    MessageTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The text's size in bytes.
        actual: usize,
    },
    /// The aggregate does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The aggregate's state forbids the command.
    #[error("{0}")]
    InvalidState(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The roles a message can have.
pub const ROLES: [&str; 4] = ["customer", "bot", "agent", "system"];

/// Bounds on what a command may carry, from config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message text, in UTF-8 bytes.
    pub max_message_bytes: usize,
}

// ---------------------------------------------------------------------------------------------
// Conversation

/// The rating a customer gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csat {
    /// 1 to 5.
    pub score: u32,
    /// The comment.
    pub comment: String,
    /// When it was given, in milliseconds since the epoch.
    pub submitted_at_ms: i64,
}

/// A conversation, as the commands need it and queries show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation's id.
    pub id: String,
    /// The contact it is with.
    pub contact_id: String,
    /// The channel it was opened on.
    pub channel: String,
    /// Its subject.
    pub subject: String,
    /// Its status (a `ConversationStatus` value).
    pub status: i32,
    /// Its priority (a `Priority` value).
    pub priority: i32,
    /// Its tags.
    pub tags: BTreeSet<String>,
    /// Its custom attributes.
    pub attributes: BTreeMap<String, String>,
    /// The assigned agent, when ASSIGNED.
    pub agent_id: String,
    /// How many messages it has.
    pub message_count: u64,
    /// The rating, once given.
    pub csat: Option<Csat>,
    /// When it was opened (ms since the epoch).
    pub created_at_ms: i64,
    /// When it last changed (ms since the epoch).
    pub updated_at_ms: i64,
}

/// Opens a conversation.
#[derive(Debug, Clone)]
pub struct Open {
    /// The new conversation's id.
    pub id: String,
    /// The contact; the caller checked that it exists.
    pub contact_id: String,
    /// The channel.
    pub channel: String,
    /// The subject.
    pub subject: String,
    /// The priority (`Priority`; unspecified means normal).
    pub priority: i32,
    /// Tags.
    pub tags: Vec<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
}

/// Adds a message.
#[derive(Debug, Clone)]
pub struct Post {
    /// The new message's id.
    pub message_id: String,
    /// Who wrote it.
    pub role: String,
    /// Its text.
    pub text: String,
    /// Its rich content.
    pub content: Option<RichContent>,
    /// Who wrote it within the role.
    pub author_id: String,
}

/// Changes a conversation; only what is set changes.
#[derive(Debug, Clone, Default)]
pub struct Update {
    /// A new status.
    pub status: Option<i32>,
    /// The agent, with ASSIGNED.
    pub agent_id: String,
    /// A new priority.
    pub priority: Option<i32>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// Attributes to set.
    pub set_attributes: BTreeMap<String, String>,
    /// Attributes to remove.
    pub remove_attributes: Vec<String>,
}

/// A command on a conversation.
#[derive(Debug, Clone)]
pub enum ConversationCommand {
    /// Open it.
    Open(Open),
    /// Add a message.
    Post(Post),
    /// Change it.
    Update(Update),
    /// Mark it resolved.
    Resolve,
    /// Reopen it.
    Reopen,
    /// Record the customer's rating.
    Rate {
        /// 1 to 5.
        score: u32,
        /// The comment.
        comment: String,
    },
}

const BOT: i32 = ConversationStatus::Bot as i32;
const QUEUED: i32 = ConversationStatus::Queued as i32;
const ASSIGNED: i32 = ConversationStatus::Assigned as i32;
const RESOLVED: i32 = ConversationStatus::Resolved as i32;
const CLOSED: i32 = ConversationStatus::Closed as i32;

/// The status name used in messages.
pub fn status_name(status: i32) -> &'static str {
    match ConversationStatus::try_from(status) {
        Ok(ConversationStatus::Bot) => "bot",
        Ok(ConversationStatus::Queued) => "queued",
        Ok(ConversationStatus::Assigned) => "assigned",
        Ok(ConversationStatus::Resolved) => "resolved",
        Ok(ConversationStatus::Closed) => "closed",
        _ => "unspecified",
    }
}

fn transition_allowed(from: i32, to: i32) -> bool {
    match from {
        BOT | QUEUED | ASSIGNED => matches!(to, BOT | QUEUED | ASSIGNED | RESOLVED | CLOSED),
        RESOLVED => to == CLOSED,
        _ => false,
    }
}

/// Decides what a command on a conversation does. `state` is `None` when it does not exist yet.
pub fn decide_conversation(
    state: Option<&Conversation>,
    command: ConversationCommand,
    limits: Limits,
) -> Result<Vec<Payload>, Rejection> {
    let Some(state) = state else {
        return match command {
            ConversationCommand::Open(open) => open_conversation(open),
            _ => Err(Rejection::NotFound("conversation".into())),
        };
    };
    match command {
        ConversationCommand::Open(_) => Err(Rejection::InvalidState(format!("conversation {} exists", state.id))),
        ConversationCommand::Post(post) => post_message(state, post, limits),
        ConversationCommand::Update(update) => update_conversation(state, update),
        ConversationCommand::Resolve => match state.status {
            RESOLVED => Ok(Vec::new()),
            CLOSED => Err(Rejection::InvalidState(
                "a closed conversation cannot be resolved".into(),
            )),
            from => Ok(vec![status_change(from, RESOLVED, "", "")]),
        },
        ConversationCommand::Reopen => match state.status {
            RESOLVED | CLOSED => Ok(vec![status_change(state.status, BOT, "reopened", "")]),
            _ => Ok(Vec::new()),
        },
        ConversationCommand::Rate { score, comment } => {
            if !(1..=5).contains(&score) {
                return Err(invalid("score", "must be 1 to 5"));
            }
            check_len("comment", &comment, 0, 2000)?;
            if !matches!(state.status, RESOLVED | CLOSED) {
                return Err(Rejection::InvalidState(format!(
                    "only a resolved or closed conversation can be rated; this one is {}",
                    status_name(state.status)
                )));
            }
            if state.csat.is_some() {
                return Err(Rejection::InvalidState("the conversation was already rated".into()));
            }
            Ok(vec![Payload::CsatSubmitted(CsatSubmitted { score, comment })])
        }
    }
}

fn open_conversation(open: Open) -> Result<Vec<Payload>, Rejection> {
    check_channel("channel", &open.channel)?;
    check_len("subject", &open.subject, 0, 200)?;
    let priority = check_priority(open.priority)?;
    let mut tags = BTreeSet::new();
    for tag in &open.tags {
        tags.insert(check_tag(tag)?);
    }
    check_tag_count(tags.len())?;
    for (key, value) in &open.attributes {
        check_attribute(key, value)?;
    }
    check_attribute_count(open.attributes.len())?;
    Ok(vec![Payload::ConversationOpened(ConversationOpened {
        contact_id: open.contact_id,
        channel: open.channel,
        subject: open.subject,
        priority,
        tags: tags.into_iter().collect(),
        attributes: open.attributes.into_iter().collect(),
    })])
}

fn post_message(state: &Conversation, post: Post, limits: Limits) -> Result<Vec<Payload>, Rejection> {
    if !ROLES.contains(&post.role.as_str()) {
        return Err(invalid("role", "must be customer, bot, agent or system"));
    }
    if post.text.len() > limits.max_message_bytes {
        return Err(Rejection::MessageTooLarge {
            limit: limits.max_message_bytes,
            actual: post.text.len(),
        });
    }
    if post
        .text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid("text", "must not contain control characters"));
    }
    let content = post.content.filter(|c| *c != RichContent::default());
    if post.text.trim().is_empty() && content.is_none() {
        return Err(invalid("text", "a message needs text or content"));
    }
    if let Some(content) = &content {
        check_content(content)?;
    }
    check_len("author_id", &post.author_id, 0, 128)?;
    let mut events = Vec::new();
    match state.status {
        CLOSED => {
            return Err(Rejection::InvalidState(
                "the conversation is closed; reopen it to add messages".into(),
            ));
        }
        RESOLVED if post.role == "customer" => {
            events.push(status_change(RESOLVED, BOT, "the customer wrote again", ""));
        }
        _ => {}
    }
    events.push(Payload::MessagePosted(MessagePosted {
        message_id: post.message_id,
        role: post.role,
        text: post.text,
        content,
        author_id: post.author_id,
        position: state.message_count + 1,
    }));
    Ok(events)
}

fn update_conversation(state: &Conversation, update: Update) -> Result<Vec<Payload>, Rejection> {
    let mut events = Vec::new();
    if let Some(to) = update.status
        && (to != state.status || (to == ASSIGNED && update.agent_id != state.agent_id))
    {
        if ConversationStatus::try_from(to).map_or(true, |s| s == ConversationStatus::Unspecified) {
            return Err(invalid("status", "unknown status"));
        }
        if to == ASSIGNED {
            check_len("agent_id", &update.agent_id, 1, 128)?;
        } else if !update.agent_id.is_empty() {
            return Err(invalid("agent_id", "only with status assigned"));
        }
        let reassign = to == ASSIGNED && state.status == ASSIGNED;
        if !reassign && !transition_allowed(state.status, to) {
            return Err(Rejection::InvalidState(format!(
                "a {} conversation cannot become {}{}",
                status_name(state.status),
                status_name(to),
                if matches!(state.status, RESOLVED | CLOSED) {
                    "; reopen it first"
                } else {
                    ""
                }
            )));
        }
        events.push(status_change(state.status, to, "", &update.agent_id));
    } else if update.status.is_none() && !update.agent_id.is_empty() {
        return Err(invalid("agent_id", "only with status assigned"));
    }
    if let Some(priority) = update.priority {
        let priority = check_priority(priority)?;
        if priority != state.priority {
            events.push(Payload::ConversationPriorityChanged(ConversationPriorityChanged {
                priority,
            }));
        }
    }
    let mut added = BTreeSet::new();
    for tag in &update.add_tags {
        let tag = check_tag(tag)?;
        if !state.tags.contains(&tag) {
            added.insert(tag);
        }
    }
    let mut removed = BTreeSet::new();
    for tag in &update.remove_tags {
        let tag = check_tag(tag)?;
        if state.tags.contains(&tag) && !added.contains(&tag) {
            removed.insert(tag);
        }
    }
    check_tag_count(state.tags.len() + added.len() - removed.len())?;
    if !added.is_empty() || !removed.is_empty() {
        events.push(Payload::ConversationTagsChanged(ConversationTagsChanged {
            added: added.into_iter().collect(),
            removed: removed.into_iter().collect(),
        }));
    }
    let mut set = BTreeMap::new();
    for (key, value) in update.set_attributes {
        check_attribute(&key, &value)?;
        if state.attributes.get(&key) != Some(&value) {
            set.insert(key, value);
        }
    }
    let mut removed_keys = BTreeSet::new();
    for key in update.remove_attributes {
        check_attribute(&key, "")?;
        if state.attributes.contains_key(&key) && !set.contains_key(&key) {
            removed_keys.insert(key);
        }
    }
    let new_keys = set.keys().filter(|k| !state.attributes.contains_key(*k)).count();
    check_attribute_count(state.attributes.len() + new_keys - removed_keys.len())?;
    if !set.is_empty() || !removed_keys.is_empty() {
        events.push(Payload::ConversationAttributesChanged(ConversationAttributesChanged {
            set: set.into_iter().collect(),
            removed: removed_keys.into_iter().collect(),
        }));
    }
    Ok(events)
}

fn status_change(from: i32, to: i32, reason: &str, agent_id: &str) -> Payload {
    Payload::ConversationStatusChanged(ConversationStatusChanged {
        from,
        to,
        reason: reason.into(),
        agent_id: agent_id.into(),
    })
}

/// Folds one event into a conversation. Events of other kinds leave it unchanged.
pub fn evolve_conversation(
    state: Option<Conversation>,
    aggregate_id: &str,
    payload: &Payload,
    at_ms: i64,
) -> Option<Conversation> {
    if let Payload::ConversationOpened(opened) = payload {
        return Some(Conversation {
            id: aggregate_id.to_owned(),
            contact_id: opened.contact_id.clone(),
            channel: opened.channel.clone(),
            subject: opened.subject.clone(),
            status: BOT,
            priority: opened.priority,
            tags: opened.tags.iter().cloned().collect(),
            attributes: opened.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            agent_id: String::new(),
            message_count: 0,
            csat: None,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
        });
    }
    let mut state = state?;
    match payload {
        Payload::MessagePosted(posted) => state.message_count = state.message_count.max(posted.position),
        Payload::ConversationStatusChanged(changed) => {
            state.status = changed.to;
            state.agent_id = if changed.to == ASSIGNED {
                changed.agent_id.clone()
            } else {
                String::new()
            };
        }
        Payload::ConversationPriorityChanged(changed) => state.priority = changed.priority,
        Payload::ConversationTagsChanged(changed) => {
            state.tags.extend(changed.added.iter().cloned());
            for tag in &changed.removed {
                state.tags.remove(tag);
            }
        }
        Payload::ConversationAttributesChanged(changed) => {
            state
                .attributes
                .extend(changed.set.iter().map(|(k, v)| (k.clone(), v.clone())));
            for key in &changed.removed {
                state.attributes.remove(key);
            }
        }
        Payload::CsatSubmitted(csat) => {
            state.csat = Some(Csat {
                score: csat.score,
                comment: csat.comment.clone(),
                submitted_at_ms: at_ms,
            });
        }
        _ => return Some(state),
    }
    state.updated_at_ms = at_ms;
    Some(state)
}

// ---------------------------------------------------------------------------------------------
// Contact

/// A contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its identities as (channel, external id), in the order linked.
    pub identities: Vec<(String, String)>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// The contact it was merged into, if any.
    pub merged_into: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_at_ms: i64,
    /// When it last changed (ms since the epoch).
    pub updated_at_ms: i64,
}

/// A command on a contact.
#[derive(Debug, Clone)]
pub enum ContactCommand {
    /// Create it from its first identity, or update its name and attributes.
    Upsert {
        /// The identity.
        identity: ChannelIdentity,
        /// A name to set (empty: leave).
        name: String,
        /// Attributes to set.
        attributes: BTreeMap<String, String>,
    },
    /// Add an identity. `owner` is the contact that already has it, if any.
    Link {
        /// The identity.
        identity: ChannelIdentity,
        /// Who has it now.
        owner: Option<String>,
    },
    /// Merge this contact into `target`.
    MergeInto {
        /// The contact that remains; the caller checked it exists and is not merged.
        target: String,
    },
}

/// Checks a channel identity.
pub fn check_identity(identity: Option<&ChannelIdentity>) -> Result<ChannelIdentity, Rejection> {
    let identity = identity.ok_or_else(|| invalid("identity", "required"))?;
    check_channel("identity.channel", &identity.channel)?;
    check_len("identity.external_id", &identity.external_id, 1, 256)?;
    if identity.external_id.chars().any(char::is_control) {
        return Err(invalid("identity.external_id", "must not contain control characters"));
    }
    Ok(identity.clone())
}

/// Decides what a command on a contact does. `state` is `None` when it does not exist yet.
pub fn decide_contact(state: Option<&Contact>, command: ContactCommand) -> Result<Vec<Payload>, Rejection> {
    if let Some(target) = state.and_then(|s| s.merged_into.as_ref()) {
        return Err(Rejection::InvalidState(format!("the contact was merged into {target}")));
    }
    match (state, command) {
        (
            None,
            ContactCommand::Upsert {
                identity,
                name,
                attributes,
            },
        ) => {
            check_len("name", &name, 0, 200)?;
            for (key, value) in &attributes {
                check_attribute(key, value)?;
            }
            check_attribute_count(attributes.len())?;
            Ok(vec![Payload::ContactCreated(ContactCreated {
                identity: Some(identity),
                name,
                attributes: attributes.into_iter().collect(),
            })])
        }
        (None, _) => Err(Rejection::NotFound("contact".into())),
        (Some(state), ContactCommand::Upsert { name, attributes, .. }) => {
            check_len("name", &name, 0, 200)?;
            let name = if name == state.name { String::new() } else { name };
            let mut changed = BTreeMap::new();
            for (key, value) in attributes {
                check_attribute(&key, &value)?;
                if state.attributes.get(&key) != Some(&value) {
                    changed.insert(key, value);
                }
            }
            let new_keys = changed.keys().filter(|k| !state.attributes.contains_key(*k)).count();
            check_attribute_count(state.attributes.len() + new_keys)?;
            if name.is_empty() && changed.is_empty() {
                return Ok(Vec::new());
            }
            Ok(vec![Payload::ContactUpdated(ContactUpdated {
                name,
                attributes: changed.into_iter().collect(),
            })])
        }
        (Some(state), ContactCommand::Link { identity, owner }) => match owner {
            Some(owner) if owner == state.id => Ok(Vec::new()),
            Some(owner) => Err(Rejection::InvalidState(format!(
                "the identity belongs to contact {owner}; merge the contacts instead"
            ))),
            None => Ok(vec![Payload::ContactIdentityLinked(ContactIdentityLinked {
                identity: Some(identity),
            })]),
        },
        (Some(state), ContactCommand::MergeInto { target }) => {
            if target == state.id {
                return Err(invalid("source_contact_id", "a contact cannot be merged into itself"));
            }
            Ok(vec![Payload::ContactMerged(ContactMerged {
                target_contact_id: target,
            })])
        }
    }
}

/// Folds one event into a contact. Events of other kinds leave it unchanged.
pub fn evolve_contact(state: Option<Contact>, aggregate_id: &str, payload: &Payload, at_ms: i64) -> Option<Contact> {
    if let Payload::ContactCreated(created) = payload {
        return Some(Contact {
            id: aggregate_id.to_owned(),
            name: created.name.clone(),
            identities: created
                .identity
                .iter()
                .map(|i| (i.channel.clone(), i.external_id.clone()))
                .collect(),
            attributes: created.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            merged_into: None,
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
        });
    }
    let mut state = state?;
    match payload {
        Payload::ContactIdentityLinked(linked) => {
            if let Some(identity) = &linked.identity {
                state
                    .identities
                    .push((identity.channel.clone(), identity.external_id.clone()));
            }
        }
        Payload::ContactUpdated(updated) => {
            if !updated.name.is_empty() {
                state.name = updated.name.clone();
            }
            state
                .attributes
                .extend(updated.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Payload::ContactMerged(merged) => state.merged_into = Some(merged.target_contact_id.clone()),
        _ => return Some(state),
    }
    state.updated_at_ms = at_ms;
    Some(state)
}

// ---------------------------------------------------------------------------------------------
// Field checks shared by the commands

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), Rejection> {
    let chars = value.chars().count();
    if chars < min {
        return Err(invalid(
            field,
            if min == 1 {
                "required".to_owned()
            } else {
                format!("at least {min} characters")
            },
        ));
    }
    if chars > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(())
}

fn check_channel(field: &'static str, channel: &str) -> Result<(), Rejection> {
    let ok = (1..=32).contains(&channel.len())
        && channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "1-32 lowercase letters, digits or '_', such as \"web\""))
    }
}

fn check_priority(priority: i32) -> Result<i32, Rejection> {
    match Priority::try_from(priority) {
        Ok(Priority::Unspecified) => Ok(Priority::Normal as i32),
        Ok(p) => Ok(p as i32),
        Err(_) => Err(invalid("priority", "unknown priority")),
    }
}

fn check_tag(tag: &str) -> Result<String, Rejection> {
    let tag = tag.trim();
    check_len("tags", tag, 1, 50)?;
    if tag.chars().any(char::is_control) {
        return Err(invalid("tags", "must not contain control characters"));
    }
    Ok(tag.to_owned())
}

fn check_tag_count(count: usize) -> Result<(), Rejection> {
    if count > 50 {
        Err(invalid("tags", "at most 50 tags"))
    } else {
        Ok(())
    }
}

fn check_attribute(key: &str, value: &str) -> Result<(), Rejection> {
    let key_ok = (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !key_ok {
        return Err(invalid(
            "attributes",
            format!("key {key:?}: 1-64 ASCII letters, digits, '_', '-' or '.'"),
        ));
    }
    check_len("attributes", value, 0, 1024)
}

fn check_attribute_count(count: usize) -> Result<(), Rejection> {
    if count > 100 {
        Err(invalid("attributes", "at most 100 attributes"))
    } else {
        Ok(())
    }
}

fn check_url(field: &'static str, url: &str, required: bool) -> Result<(), Rejection> {
    if url.is_empty() && !required {
        return Ok(());
    }
    let ok = url.len() <= 2048
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "an http(s) URL of at most 2048 characters"))
    }
}

fn check_content(content: &RichContent) -> Result<(), Rejection> {
    if content.quick_replies.len() > 10 || content.cards.len() > 10 || content.attachments.len() > 10 {
        return Err(invalid(
            "content",
            "at most 10 quick replies, 10 cards and 10 attachments",
        ));
    }
    for reply in &content.quick_replies {
        check_len("content.quick_replies.title", &reply.title, 1, 100)?;
        check_len("content.quick_replies.payload", &reply.payload, 0, 1000)?;
    }
    for card in &content.cards {
        check_len("content.cards.title", &card.title, 1, 200)?;
        check_len("content.cards.subtitle", &card.subtitle, 0, 500)?;
        check_url("content.cards.image_url", &card.image_url, false)?;
        check_url("content.cards.url", &card.url, false)?;
    }
    for attachment in &content.attachments {
        check_url("content.attachments.url", &attachment.url, true)?;
        check_len("content.attachments.content_type", &attachment.content_type, 0, 127)?;
        check_len("content.attachments.name", &attachment.name, 0, 255)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Given events, when a command, then events or a rejection.

    use super::*;

    const LIMITS: Limits = Limits { max_message_bytes: 16 };

    fn given(events: &[Payload]) -> Option<Conversation> {
        events
            .iter()
            .enumerate()
            .fold(None, |state, (i, e)| evolve_conversation(state, "conv_1", e, i as i64))
    }

    fn opened() -> Payload {
        Payload::ConversationOpened(ConversationOpened {
            contact_id: "ctc_1".into(),
            channel: "web".into(),
            subject: String::new(),
            priority: Priority::Normal as i32,
            tags: vec!["new".into()],
            attributes: Default::default(),
        })
    }

    fn status(from: i32, to: i32) -> Payload {
        status_change(from, to, "", if to == ASSIGNED { "agt_1" } else { "" })
    }

    fn when(state: &Option<Conversation>, command: ConversationCommand) -> Result<Vec<Payload>, Rejection> {
        decide_conversation(state.as_ref(), command, LIMITS)
    }

    fn open_command() -> ConversationCommand {
        ConversationCommand::Open(Open {
            id: "conv_1".into(),
            contact_id: "ctc_1".into(),
            channel: "web".into(),
            subject: "Order".into(),
            priority: 0,
            tags: vec![" vip ".into(), "vip".into()],
            attributes: BTreeMap::from([("plan".into(), "gold".into())]),
        })
    }

    fn post(role: &str, text: &str) -> ConversationCommand {
        ConversationCommand::Post(Post {
            message_id: "msg_1".into(),
            role: role.into(),
            text: text.into(),
            content: None,
            author_id: String::new(),
        })
    }

    #[test]
    fn open_normalises_and_defaults() {
        let events = when(&None, open_command()).expect("opened");
        let [Payload::ConversationOpened(opened)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(opened.priority, Priority::Normal as i32);
        assert_eq!(opened.tags, ["vip"]);
        let state = given(&events).expect("state");
        assert_eq!(state.status, BOT);
        assert_eq!(
            when(&Some(state), open_command()).map_err(|e| matches!(e, Rejection::InvalidState(_))),
            Err(true)
        );
    }

    #[test]
    fn open_rejects_bad_fields() {
        for (field, open) in [
            (
                "channel",
                Open {
                    channel: "Web!".into(),
                    ..open_fields()
                },
            ),
            (
                "subject",
                Open {
                    subject: "x".repeat(201),
                    ..open_fields()
                },
            ),
            (
                "priority",
                Open {
                    priority: 99,
                    ..open_fields()
                },
            ),
            (
                "tags",
                Open {
                    tags: vec![String::new()],
                    ..open_fields()
                },
            ),
            (
                "attributes",
                Open {
                    attributes: BTreeMap::from([("bad key".into(), "v".into())]),
                    ..open_fields()
                },
            ),
        ] {
            match when(&None, ConversationCommand::Open(open)) {
                Err(Rejection::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    fn open_fields() -> Open {
        match open_command() {
            ConversationCommand::Open(open) => open,
            _ => unreachable!("open_command opens"),
        }
    }

    #[test]
    fn commands_on_a_missing_conversation_are_not_found() {
        for command in [
            post("customer", "hi"),
            ConversationCommand::Resolve,
            ConversationCommand::Reopen,
        ] {
            assert!(matches!(when(&None, command), Err(Rejection::NotFound(_))));
        }
    }

    #[test]
    fn posting_numbers_messages_in_order() {
        let state = given(&[opened()]);
        let events = when(&state, post("customer", "hello")).expect("posted");
        let [Payload::MessagePosted(first)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(first.position, 1);
        let state = given(&[opened(), events[0].clone()]);
        let events = when(&state, post("agent", "hi")).expect("posted");
        let [Payload::MessagePosted(second)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(second.position, 2);
    }

    #[test]
    fn posting_checks_role_size_and_emptiness() {
        let state = given(&[opened()]);
        assert!(matches!(
            when(&state, post("robot", "x")),
            Err(Rejection::Invalid { field: "role", .. })
        ));
        assert_eq!(
            when(&state, post("customer", &"é".repeat(9))),
            Err(Rejection::MessageTooLarge { limit: 16, actual: 18 })
        );
        assert!(matches!(
            when(&state, post("customer", "  ")),
            Err(Rejection::Invalid { field: "text", .. })
        ));
        assert!(matches!(
            when(&state, post("customer", "a\u{0}b")),
            Err(Rejection::Invalid { field: "text", .. })
        ));
        let with_card = ConversationCommand::Post(Post {
            content: Some(RichContent {
                cards: vec![yy_proto::conversation::v1::Card {
                    title: "Order 42".into(),
                    url: "javascript:alert(1)".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..post_fields()
        });
        assert!(matches!(
            when(&state, with_card),
            Err(Rejection::Invalid {
                field: "content.cards.url",
                ..
            })
        ));
    }

    fn post_fields() -> Post {
        match post("bot", "") {
            ConversationCommand::Post(post) => post,
            _ => unreachable!("post posts"),
        }
    }

    #[test]
    fn a_customer_writing_to_a_resolved_conversation_reopens_it() {
        let state = given(&[opened(), status(BOT, RESOLVED)]);
        let events = when(&state, post("customer", "again")).expect("posted");
        assert!(matches!(
            events.as_slice(),
            [
                Payload::ConversationStatusChanged(ConversationStatusChanged {
                    from: RESOLVED,
                    to: BOT,
                    ..
                }),
                Payload::MessagePosted(_)
            ]
        ));
        // An agent's follow-up does not.
        let events = when(&state, post("agent", "bye")).expect("posted");
        assert!(matches!(events.as_slice(), [Payload::MessagePosted(_)]));
    }

    #[test]
    fn a_closed_conversation_takes_no_messages_until_reopened() {
        let state = given(&[opened(), status(BOT, CLOSED)]);
        assert!(matches!(
            when(&state, post("customer", "hi")),
            Err(Rejection::InvalidState(_))
        ));
        let reopened = when(&state, ConversationCommand::Reopen).expect("reopened");
        assert_eq!(reopened, vec![status_change(CLOSED, BOT, "reopened", "")]);
    }

    #[test]
    fn status_transitions_follow_the_lifecycle() {
        let open = given(&[opened()]);
        let assign = |agent: &str| {
            ConversationCommand::Update(Update {
                status: Some(ASSIGNED),
                agent_id: agent.into(),
                ..Update::default()
            })
        };
        assert!(matches!(
            when(&open, assign("")),
            Err(Rejection::Invalid { field: "agent_id", .. })
        ));
        assert_eq!(
            when(&open, assign("agt_1")).expect("assigned"),
            vec![status(BOT, ASSIGNED)]
        );
        let assigned = given(&[opened(), status(BOT, ASSIGNED)]);
        assert_eq!(when(&assigned, assign("agt_1")).expect("same agent"), vec![]);
        assert_eq!(
            when(&assigned, assign("agt_2")).expect("reassigned"),
            vec![status_change(ASSIGNED, ASSIGNED, "", "agt_2")]
        );
        let resolved = given(&[opened(), status(BOT, RESOLVED)]);
        assert!(matches!(
            when(&resolved, assign("agt_1")),
            Err(Rejection::InvalidState(_))
        ));
        let to_closed = ConversationCommand::Update(Update {
            status: Some(CLOSED),
            ..Update::default()
        });
        assert_eq!(
            when(&resolved, to_closed).expect("closed"),
            vec![status(RESOLVED, CLOSED)]
        );
        assert_eq!(
            when(&resolved, ConversationCommand::Resolve).expect("idempotent"),
            vec![]
        );
        let closed = given(&[opened(), status(BOT, CLOSED)]);
        assert!(matches!(
            when(&closed, ConversationCommand::Resolve),
            Err(Rejection::InvalidState(_))
        ));
        assert_eq!(
            given(&[opened(), status(BOT, ASSIGNED), status(ASSIGNED, QUEUED)])
                .expect("s")
                .agent_id,
            ""
        );
    }

    #[test]
    fn updates_emit_only_real_changes() {
        let state = given(&[opened()]);
        let update = Update {
            priority: Some(Priority::Urgent as i32),
            add_tags: vec!["new".into(), "refund".into()],
            remove_tags: vec!["missing".into()],
            set_attributes: BTreeMap::from([("order".into(), "42".into())]),
            remove_attributes: vec!["absent".into()],
            ..Update::default()
        };
        let events = when(&state, ConversationCommand::Update(update)).expect("updated");
        assert_eq!(
            events,
            vec![
                Payload::ConversationPriorityChanged(ConversationPriorityChanged {
                    priority: Priority::Urgent as i32
                }),
                Payload::ConversationTagsChanged(ConversationTagsChanged {
                    added: vec!["refund".into()],
                    removed: vec![]
                }),
                Payload::ConversationAttributesChanged(ConversationAttributesChanged {
                    set: [("order".to_owned(), "42".to_owned())].into(),
                    removed: vec![]
                }),
            ]
        );
        let mut all = vec![opened()];
        all.extend(events);
        let state = given(&all).expect("state");
        assert_eq!(state.tags, BTreeSet::from(["new".to_owned(), "refund".to_owned()]));
        assert_eq!(state.attributes["order"], "42");
        assert!(
            when(&Some(state), ConversationCommand::Update(Update::default()))
                .expect("nothing")
                .is_empty()
        );
    }

    #[test]
    fn csat_only_after_resolution_once_and_in_range() {
        let rate = |score| ConversationCommand::Rate {
            score,
            comment: "thanks".into(),
        };
        let open = given(&[opened()]);
        assert!(matches!(when(&open, rate(5)), Err(Rejection::InvalidState(_))));
        let resolved = given(&[opened(), status(BOT, RESOLVED)]);
        assert!(matches!(
            when(&resolved, rate(0)),
            Err(Rejection::Invalid { field: "score", .. })
        ));
        assert!(matches!(
            when(&resolved, rate(6)),
            Err(Rejection::Invalid { field: "score", .. })
        ));
        let events = when(&resolved, rate(4)).expect("rated");
        let rated = given(&[opened(), status(BOT, RESOLVED), events[0].clone()]);
        assert_eq!(rated.as_ref().and_then(|s| s.csat.as_ref()).map(|c| c.score), Some(4));
        assert!(matches!(when(&rated, rate(5)), Err(Rejection::InvalidState(_))));
    }

    fn identity(channel: &str, id: &str) -> ChannelIdentity {
        ChannelIdentity {
            channel: channel.into(),
            external_id: id.into(),
        }
    }

    fn contact(events: &[Payload]) -> Option<Contact> {
        events
            .iter()
            .fold(None, |state, e| evolve_contact(state, "ctc_1", e, 0))
    }

    #[test]
    fn upsert_creates_then_updates_only_what_changed() {
        let upsert = |name: &str| ContactCommand::Upsert {
            identity: identity("web", "v1"),
            name: name.into(),
            attributes: BTreeMap::from([("tier".into(), "vip".into())]),
        };
        let created = decide_contact(None, upsert("Ann")).expect("created");
        let state = contact(&created).expect("state");
        assert_eq!(state.identities, [("web".to_owned(), "v1".to_owned())]);
        assert_eq!(decide_contact(Some(&state), upsert("Ann")).expect("same"), vec![]);
        assert_eq!(
            decide_contact(Some(&state), upsert("Anna")).expect("renamed"),
            vec![Payload::ContactUpdated(ContactUpdated {
                name: "Anna".into(),
                attributes: Default::default()
            })]
        );
    }

    #[test]
    fn linking_an_identity_of_another_contact_is_refused() {
        let state = contact(
            &decide_contact(
                None,
                ContactCommand::Upsert {
                    identity: identity("web", "v1"),
                    name: String::new(),
                    attributes: BTreeMap::new(),
                },
            )
            .expect("created"),
        )
        .expect("state");
        let link = |owner: Option<&str>| ContactCommand::Link {
            identity: identity("whatsapp", "+86"),
            owner: owner.map(Into::into),
        };
        assert_eq!(decide_contact(Some(&state), link(Some("ctc_1"))).expect("own"), vec![]);
        assert!(matches!(
            decide_contact(Some(&state), link(Some("ctc_2"))),
            Err(Rejection::InvalidState(_))
        ));
        let linked = decide_contact(Some(&state), link(None)).expect("linked");
        let mut events = decide_contact(
            None,
            ContactCommand::Upsert {
                identity: identity("web", "v1"),
                name: String::new(),
                attributes: BTreeMap::new(),
            },
        )
        .expect("created");
        events.extend(linked);
        assert_eq!(contact(&events).expect("state").identities.len(), 2);
    }

    #[test]
    fn a_merged_contact_takes_no_more_commands() {
        let mut events = decide_contact(
            None,
            ContactCommand::Upsert {
                identity: identity("web", "v1"),
                name: String::new(),
                attributes: BTreeMap::new(),
            },
        )
        .expect("created");
        let state = contact(&events).expect("state");
        assert!(matches!(
            decide_contact(Some(&state), ContactCommand::MergeInto { target: "ctc_1".into() }),
            Err(Rejection::Invalid { .. })
        ));
        events.extend(
            decide_contact(Some(&state), ContactCommand::MergeInto { target: "ctc_2".into() }).expect("merged"),
        );
        let merged = contact(&events).expect("state");
        assert_eq!(merged.merged_into.as_deref(), Some("ctc_2"));
        assert!(matches!(
            decide_contact(Some(&merged), ContactCommand::MergeInto { target: "ctc_3".into() }),
            Err(Rejection::InvalidState(_))
        ));
    }

    #[test]
    fn identities_are_checked() {
        assert!(check_identity(None).is_err());
        assert!(check_identity(Some(&identity("web", ""))).is_err());
        assert!(check_identity(Some(&identity("WEB", "x"))).is_err());
        assert!(check_identity(Some(&identity("web", "a\nb"))).is_err());
        assert!(check_identity(Some(&identity("wechat", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))).is_ok());
    }
}
