//! What routing knows of the conversation log: each conversation's contact, channel and status
//! with its latest messages (for the handoff context), and each contact's attributes (which
//! rules test, such as a VIP tier). Rebuilt from `YY_CONV`; the conversation service writes it.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use yy_eventlog::{Payload, Projection, Record, Snapshottable};
use yy_proto::conversation::v1::ConversationStatus;

/// How many of a conversation's latest messages a handoff carries.
pub const RECENT_MESSAGES: usize = 6;
/// The longest text kept of a recent message, in characters: enough for an agent to read.
const RECENT_TEXT_CHARS: usize = 500;

/// Every tenant's conversations and contacts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConversationView {
    tenants: HashMap<String, TenantView>,
}

/// One tenant's conversations and contacts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantView {
    conversations: HashMap<String, ConversationInfo>,
    contacts: HashMap<String, ContactInfo>,
}

/// A conversation as routing needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationInfo {
    /// The contact it is with.
    pub contact_id: String,
    /// Its channel.
    pub channel: String,
    /// Its status (`ConversationStatus` as a number).
    pub status: i32,
    /// The agent it is assigned to, when assigned.
    pub agent_id: String,
    /// The agent it was last assigned to, kept after it left them (a resolution, a transfer).
    #[serde(default)]
    pub last_agent_id: String,
    /// Its priority (`Priority` as a number).
    #[serde(default)]
    pub priority: i32,
    /// Its tags.
    pub tags: Vec<String>,
    /// The latest messages, oldest first.
    pub recent: VecDeque<RecentMessage>,
}

/// One of a conversation's latest messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentMessage {
    /// "customer", "bot", "agent" or "system".
    pub role: String,
    /// The text, cut to a readable length.
    pub text: String,
    /// When it was posted.
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ContactInfo {
    attributes: HashMap<String, String>,
    merged_into: Option<String>,
}

impl ConversationView {
    /// One tenant's view, if it has anything.
    pub fn tenant(&self, tenant: &str) -> Option<&TenantView> {
        self.tenants.get(tenant)
    }
}

impl TenantView {
    /// A conversation.
    pub fn conversation(&self, id: &str) -> Option<&ConversationInfo> {
        self.conversations.get(id)
    }

    /// The attributes of a contact, following merges to the contact it became.
    pub fn contact_attributes(&self, id: &str) -> HashMap<String, String> {
        let mut id = id;
        // Merges form chains, never cycles; the bound guards against a damaged log all the same.
        for _ in 0..16 {
            match self.contacts.get(id) {
                Some(ContactInfo {
                    merged_into: Some(target),
                    ..
                }) => id = target,
                Some(contact) => return contact.attributes.clone(),
                None => break,
            }
        }
        HashMap::new()
    }
}

impl ConversationInfo {
    /// The status as the enum; unknown numbers read as unspecified.
    pub fn status(&self) -> ConversationStatus {
        ConversationStatus::try_from(self.status).unwrap_or(ConversationStatus::Unspecified)
    }
}

fn millis(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

impl Projection for ConversationView {
    fn apply(&mut self, record: &Record) {
        let tenant = self.tenants.entry(record.tenant_id.clone()).or_default();
        let id = &record.aggregate_id;
        for event in &record.commit.events {
            let at_ms = millis(event.occurred_at.as_ref());
            match &event.payload {
                Some(Payload::ConversationOpened(opened)) => {
                    tenant.conversations.insert(
                        id.clone(),
                        ConversationInfo {
                            contact_id: opened.contact_id.clone(),
                            channel: opened.channel.clone(),
                            status: ConversationStatus::Bot as i32,
                            priority: opened.priority,
                            tags: opened.tags.clone(),
                            ..ConversationInfo::default()
                        },
                    );
                }
                Some(Payload::MessagePosted(posted)) => {
                    if let Some(conversation) = tenant.conversations.get_mut(id) {
                        if conversation.recent.len() == RECENT_MESSAGES {
                            conversation.recent.pop_front();
                        }
                        conversation.recent.push_back(RecentMessage {
                            role: posted.role.clone(),
                            text: posted.text.chars().take(RECENT_TEXT_CHARS).collect(),
                            at_ms,
                        });
                    }
                }
                Some(Payload::ConversationStatusChanged(changed)) => {
                    if let Some(conversation) = tenant.conversations.get_mut(id) {
                        conversation.status = changed.to;
                        conversation.agent_id = changed.agent_id.clone();
                        if !changed.agent_id.is_empty() {
                            conversation.last_agent_id = changed.agent_id.clone();
                        }
                    }
                }
                Some(Payload::ConversationPriorityChanged(changed)) => {
                    if let Some(conversation) = tenant.conversations.get_mut(id) {
                        conversation.priority = changed.priority;
                    }
                }
                Some(Payload::ConversationTagsChanged(changed)) => {
                    if let Some(conversation) = tenant.conversations.get_mut(id) {
                        conversation.tags.retain(|t| !changed.removed.contains(t));
                        for tag in &changed.added {
                            if !conversation.tags.contains(tag) {
                                conversation.tags.push(tag.clone());
                            }
                        }
                    }
                }
                Some(Payload::ContactCreated(created)) => {
                    let contact = tenant.contacts.entry(id.clone()).or_default();
                    contact
                        .attributes
                        .extend(created.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Some(Payload::ContactUpdated(updated)) => {
                    let contact = tenant.contacts.entry(id.clone()).or_default();
                    contact
                        .attributes
                        .extend(updated.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Some(Payload::ContactMerged(merged)) => {
                    tenant.contacts.entry(id.clone()).or_default().merged_into = Some(merged.target_contact_id.clone());
                }
                _ => {}
            }
        }
    }
}

impl Snapshottable for ConversationView {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
