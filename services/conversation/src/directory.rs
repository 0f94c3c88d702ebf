//! The read model: every tenant's conversations, messages and contacts, rebuilt from the
//! conversation log and kept in memory. Commands read the current state of an aggregate here
//! (with the stream sequence it reflects, for optimistic concurrency) and queries are answered
//! from here.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use prost::Message as _;
use serde::{Deserialize, Serialize};
use yy_eventlog::{Projection, Record, Snapshottable};
use yy_proto::conversation::v1::RichContent;

use crate::domain::{Contact, Conversation, evolve_contact, evolve_conversation};
use yy_eventlog::Payload;

/// How many recent command ids each aggregate remembers, so that a retried command whose first
/// attempt was stored is answered with its result instead of being decided again.
const RECENT_COMMANDS: usize = 8;

/// Merges are followed at most this far; longer chains cannot be built (a merge target must not
/// itself be merged), so this only guards against a corrupt log.
const MAX_MERGE_DEPTH: usize = 32;

/// All tenants' data.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Directory {
    tenants: HashMap<String, Tenant>,
}

/// One tenant's data. Nothing here is reachable with another tenant's id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tenant {
    /// By id; ids are UUIDv7-based, so this order is creation order.
    pub conversations: BTreeMap<String, ConversationEntry>,
    /// By id.
    pub contacts: HashMap<String, ContactEntry>,
    /// `channel \0 external id` → the contact that has the identity (before following merges).
    identities: HashMap<String, String>,
    /// Contact → its conversations.
    contact_conversations: HashMap<String, BTreeSet<String>>,
    /// Contact → the contacts merged into it.
    merged_from: HashMap<String, Vec<String>>,
}

/// A conversation with its messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationEntry {
    /// Its state.
    pub state: Conversation,
    /// Its messages, in position order.
    pub messages: Vec<StoredMessage>,
    /// The stream sequence of its last commit.
    pub sequence: u64,
    /// Its partition.
    pub partition: u32,
    recent_commands: VecDeque<String>,
}

/// A contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContactEntry {
    /// Its state.
    pub state: Contact,
    /// The stream sequence of its last commit.
    pub sequence: u64,
    /// Its partition.
    pub partition: u32,
    recent_commands: VecDeque<String>,
}

/// A message as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its text.
    pub text: String,
    /// Its rich content, protobuf-encoded; empty when it has none.
    pub content: Vec<u8>,
    /// Who wrote it within the role.
    pub author_id: String,
    /// Its position, from 1.
    pub position: u64,
    /// When it was posted (ms since the epoch).
    pub created_at_ms: i64,
}

impl StoredMessage {
    /// Its rich content, if any.
    pub fn content(&self) -> Option<RichContent> {
        if self.content.is_empty() {
            return None;
        }
        RichContent::decode(self.content.as_slice()).ok()
    }
}

/// A filter for listing conversations.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Statuses to include; all when empty.
    pub statuses: Vec<i32>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only with this tag.
    pub tag: Option<String>,
    /// Only this priority.
    pub priority: Option<i32>,
    /// Only these contacts' conversations.
    pub contact_ids: Option<BTreeSet<String>>,
}

impl ConversationFilter {
    fn matches(&self, conversation: &Conversation) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&conversation.status))
            && self.channel.as_ref().is_none_or(|c| *c == conversation.channel)
            && self.tag.as_ref().is_none_or(|t| conversation.tags.contains(t))
            && self.priority.is_none_or(|p| p == conversation.priority)
            && self
                .contact_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&conversation.contact_id))
    }
}

fn identity_key(channel: &str, external_id: &str) -> String {
    format!("{channel}\0{external_id}")
}

fn remember(recent: &mut VecDeque<String>, command_id: &str) {
    if recent.len() == RECENT_COMMANDS {
        recent.pop_front();
    }
    recent.push_back(command_id.to_owned());
}

impl Directory {
    /// One tenant's data, if it has any.
    pub fn tenant(&self, tenant_id: &str) -> Option<&Tenant> {
        self.tenants.get(tenant_id)
    }
}

impl Tenant {
    /// A conversation.
    pub fn conversation(&self, id: &str) -> Option<&ConversationEntry> {
        self.conversations.get(id)
    }

    /// A contact as stored, without following merges.
    pub fn contact(&self, id: &str) -> Option<&ContactEntry> {
        self.contacts.get(id)
    }

    /// The contact `id` stands for: itself, or the one it was (transitively) merged into.
    pub fn resolve_contact(&self, id: &str) -> Option<&ContactEntry> {
        let mut entry = self.contacts.get(id)?;
        for _ in 0..MAX_MERGE_DEPTH {
            match &entry.state.merged_into {
                Some(target) => entry = self.contacts.get(target)?,
                None => return Some(entry),
            }
        }
        None
    }

    /// The contact that has an identity, following merges.
    pub fn contact_with_identity(&self, channel: &str, external_id: &str) -> Option<&ContactEntry> {
        let owner = self.identities.get(&identity_key(channel, external_id))?;
        self.resolve_contact(owner)
    }

    /// A contact and every contact merged into it, transitively.
    pub fn contact_family(&self, root: &str) -> BTreeSet<String> {
        let mut family = BTreeSet::from([root.to_owned()]);
        let mut pending = vec![root.to_owned()];
        while let Some(id) = pending.pop() {
            for source in self.merged_from.get(&id).into_iter().flatten() {
                if family.insert(source.clone()) {
                    pending.push(source.clone());
                }
            }
        }
        family
    }

    /// Every identity of a contact and of the contacts merged into it.
    pub fn identities_of(&self, root: &str) -> Vec<(String, String)> {
        let mut identities: Vec<(String, String)> = Vec::new();
        let family = self.contact_family(root);
        let mut members: Vec<&ContactEntry> = family.iter().filter_map(|id| self.contacts.get(id)).collect();
        members.sort_by_key(|c| (c.state.id != root, c.state.created_at_ms));
        for member in members {
            for identity in &member.state.identities {
                if !identities.contains(identity) {
                    identities.push(identity.clone());
                }
            }
        }
        identities
    }

    /// The contacts merged into `root`, transitively.
    pub fn merged_into(&self, root: &str) -> Vec<String> {
        self.contact_family(root).into_iter().filter(|id| id != root).collect()
    }

    /// A page of conversations matching `filter`, newest first, starting after `after` (an id).
    /// Returns the page and whether more follow.
    pub fn list_conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<&ConversationEntry>, bool) {
        let candidates: Box<dyn Iterator<Item = &ConversationEntry>> = match &filter.contact_ids {
            // A contact's conversations are few: collect them by index rather than scan all.
            Some(contacts) => {
                let mut ids: Vec<&String> = contacts
                    .iter()
                    .filter_map(|c| self.contact_conversations.get(c))
                    .flatten()
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let after = after.map(str::to_owned);
                Box::new(
                    ids.into_iter()
                        .rev()
                        .filter(move |id| after.as_ref().is_none_or(|a| id.as_str() < a.as_str()))
                        .filter_map(|id| self.conversations.get(id)),
                )
            }
            None => match after {
                Some(after) => Box::new(self.conversations.range(..after.to_owned()).rev().map(|(_, c)| c)),
                None => Box::new(self.conversations.values().rev()),
            },
        };
        let mut page: Vec<&ConversationEntry> = candidates
            .filter(|c| filter.matches(&c.state))
            .take(limit + 1)
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

impl ConversationEntry {
    /// True when the command was among the last ones stored for this conversation.
    pub fn recently_ran(&self, command_id: &str) -> bool {
        self.recent_commands.iter().any(|c| c == command_id)
    }
}

impl ContactEntry {
    /// True when the command was among the last ones stored for this contact.
    pub fn recently_ran(&self, command_id: &str) -> bool {
        self.recent_commands.iter().any(|c| c == command_id)
    }
}

impl Projection for Directory {
    fn apply(&mut self, record: &Record) {
        let tenant = self.tenants.entry(record.tenant_id.clone()).or_default();
        let id = record.aggregate_id.as_str();
        for event in &record.commit.events {
            let Some(payload) = &event.payload else { continue };
            let at_ms = event
                .occurred_at
                .as_ref()
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            if id.starts_with("conv_") {
                tenant.apply_conversation(id, record.partition, payload, at_ms);
            } else if id.starts_with("ctc_") {
                tenant.apply_contact(id, record.partition, payload, at_ms);
            }
        }
        if let Some(entry) = tenant.conversations.get_mut(id) {
            entry.sequence = record.sequence;
            remember(&mut entry.recent_commands, &record.commit.command_id);
        } else if let Some(entry) = tenant.contacts.get_mut(id) {
            entry.sequence = record.sequence;
            remember(&mut entry.recent_commands, &record.commit.command_id);
        }
    }
}

impl Tenant {
    fn apply_conversation(&mut self, id: &str, partition: u32, payload: &Payload, at_ms: i64) {
        match self.conversations.get_mut(id) {
            Some(entry) => {
                if let Payload::MessagePosted(posted) = payload
                    && posted.position as usize == entry.messages.len() + 1
                {
                    entry.messages.push(StoredMessage {
                        id: posted.message_id.clone(),
                        role: posted.role.clone(),
                        text: posted.text.clone(),
                        content: posted.content.as_ref().map(|c| c.encode_to_vec()).unwrap_or_default(),
                        author_id: posted.author_id.clone(),
                        position: posted.position,
                        created_at_ms: at_ms,
                    });
                }
                // Taken rather than cloned: this runs for every stored event.
                let state = std::mem::take(&mut entry.state);
                entry.state = evolve_conversation(Some(state), id, payload, at_ms).unwrap_or_default();
            }
            None => {
                if let Some(state) = evolve_conversation(None, id, payload, at_ms) {
                    self.contact_conversations
                        .entry(state.contact_id.clone())
                        .or_default()
                        .insert(id.to_owned());
                    self.conversations.insert(
                        id.to_owned(),
                        ConversationEntry {
                            state,
                            messages: Vec::new(),
                            sequence: 0,
                            partition,
                            recent_commands: VecDeque::new(),
                        },
                    );
                }
            }
        }
    }

    fn apply_contact(&mut self, id: &str, partition: u32, payload: &Payload, at_ms: i64) {
        let identity = match payload {
            Payload::ContactCreated(created) => created.identity.as_ref(),
            Payload::ContactIdentityLinked(linked) => linked.identity.as_ref(),
            _ => None,
        };
        if let Some(identity) = identity {
            self.identities
                .entry(identity_key(&identity.channel, &identity.external_id))
                .or_insert_with(|| id.to_owned());
        }
        if let Payload::ContactMerged(merged) = payload {
            self.merged_from
                .entry(merged.target_contact_id.clone())
                .or_default()
                .push(id.to_owned());
        }
        match self.contacts.get_mut(id) {
            Some(entry) => {
                let state = std::mem::take(&mut entry.state);
                entry.state = evolve_contact(Some(state), id, payload, at_ms).unwrap_or_default();
            }
            None => {
                if let Some(state) = evolve_contact(None, id, payload, at_ms) {
                    self.contacts.insert(
                        id.to_owned(),
                        ContactEntry {
                            state,
                            sequence: 0,
                            partition,
                            recent_commands: VecDeque::new(),
                        },
                    );
                }
            }
        }
    }
}

impl Snapshottable for Directory {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
