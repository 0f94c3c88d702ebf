//! The JSON shapes of the REST API and their translation to and from the conversation API.
//!
//! Request bodies refuse unknown fields, so a misspelt field is reported instead of ignored.
//! Optional fields that are empty upstream are left out of responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yy_proto::conversation::v1 as pb;

/// Where a conversation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The bot is answering.
    Bot,
    /// Waiting in a queue for a human agent.
    Queued,
    /// A human agent is answering.
    Assigned,
    /// Resolved; the customer may rate it, and writing again reopens it.
    Resolved,
    /// Closed for good: it accepts no more messages until reopened.
    Closed,
}

impl Status {
    /// Every status with its name, for parsing query parameters.
    pub const ALL: [(&'static str, Status); 5] = [
        ("bot", Status::Bot),
        ("queued", Status::Queued),
        ("assigned", Status::Assigned),
        ("resolved", Status::Resolved),
        ("closed", Status::Closed),
    ];

    pub(crate) fn to_proto(self) -> pb::ConversationStatus {
        match self {
            Status::Bot => pb::ConversationStatus::Bot,
            Status::Queued => pb::ConversationStatus::Queued,
            Status::Assigned => pb::ConversationStatus::Assigned,
            Status::Resolved => pb::ConversationStatus::Resolved,
            Status::Closed => pb::ConversationStatus::Closed,
        }
    }

    fn from_proto(status: pb::ConversationStatus) -> Option<Status> {
        Some(match status {
            pb::ConversationStatus::Unspecified => return None,
            pb::ConversationStatus::Bot => Status::Bot,
            pb::ConversationStatus::Queued => Status::Queued,
            pb::ConversationStatus::Assigned => Status::Assigned,
            pb::ConversationStatus::Resolved => Status::Resolved,
            pb::ConversationStatus::Closed => Status::Closed,
        })
    }
}

/// How urgent a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    Normal,
    /// Ahead of normal.
    High,
    /// Ahead of everything.
    Urgent,
}

impl Priority {
    /// Every priority with its name, for parsing query parameters.
    pub const ALL: [(&'static str, Priority); 4] = [
        ("low", Priority::Low),
        ("normal", Priority::Normal),
        ("high", Priority::High),
        ("urgent", Priority::Urgent),
    ];

    pub(crate) fn to_proto(self) -> pb::Priority {
        match self {
            Priority::Low => pb::Priority::Low,
            Priority::Normal => pb::Priority::Normal,
            Priority::High => pb::Priority::High,
            Priority::Urgent => pb::Priority::Urgent,
        }
    }

    fn from_proto(priority: pb::Priority) -> Priority {
        match priority {
            pb::Priority::Low => Priority::Low,
            // Unset means normal.
            pb::Priority::Unspecified | pb::Priority::Normal => Priority::Normal,
            pb::Priority::High => Priority::High,
            pb::Priority::Urgent => Priority::Urgent,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The customer.
    Customer,
    /// The bot.
    Bot,
    /// A human agent.
    Agent,
    /// The platform itself (such as "assigned to Li Wei").
    System,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Bot => "bot",
            Role::Agent => "agent",
            Role::System => "system",
        }
    }

    pub(crate) fn parse(role: &str) -> Option<Role> {
        Some(match role {
            "customer" => Role::Customer,
            "bot" => Role::Bot,
            "agent" => Role::Agent,
            "system" => Role::System,
            _ => return None,
        })
    }
}

/// One identity of a customer on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "whatsapp", "external_id": "+8613800138000"}))]
pub struct ChannelIdentity {
    /// The channel: `web`, `app`, `email`, `wechat`, `whatsapp`, `sms`, `api`, or another
    /// lowercase name.
    #[schema(example = "web")]
    pub channel: String,
    /// The customer's id on that channel: a visitor id, an email address, a phone number, an
    /// open id.
    #[schema(example = "visitor-7f3a")]
    pub external_id: String,
}

impl ChannelIdentity {
    pub(crate) fn into_proto(self) -> pb::ChannelIdentity {
        pb::ChannelIdentity {
            channel: self.channel,
            external_id: self.external_id,
        }
    }

    fn from_proto(identity: pb::ChannelIdentity) -> Self {
        ChannelIdentity {
            channel: identity.channel,
            external_id: identity.external_id,
        }
    }
}

/// A customer, with every channel identity known to be theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0d",
    "name": "Zhang Wei",
    "identities": [
        {"channel": "web", "external_id": "visitor-7f3a"},
        {"channel": "whatsapp", "external_id": "+8613800138000"}
    ],
    "attributes": {"tier": "vip"},
    "merged_contact_ids": [],
    "created_at": "2025-05-20T08:30:00.123Z",
    "updated_at": "2025-05-20T09:12:45.5Z"
}))]
pub struct Contact {
    /// `ctc_…`.
    pub id: String,
    /// The display name; empty when unknown.
    pub name: String,
    /// Every identity, in the order they were linked.
    pub identities: Vec<ChannelIdentity>,
    /// Custom attributes (such as a VIP tier).
    pub attributes: BTreeMap<String, String>,
    /// Contacts merged into this one; their ids still answer, with this contact.
    pub merged_contact_ids: Vec<String>,
    /// When it was created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<pb::Contact> for Contact {
    fn from(contact: pb::Contact) -> Self {
        Contact {
            id: contact.id,
            name: contact.name,
            identities: contact
                .identities
                .into_iter()
                .map(ChannelIdentity::from_proto)
                .collect(),
            attributes: contact.attributes.into_iter().collect(),
            merged_contact_ids: contact.merged_contact_ids,
            created_at: timestamp(contact.created_at),
            updated_at: timestamp(contact.updated_at),
        }
    }
}

/// Finds the contact with this channel identity, creating it when there is none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "identity": {"channel": "web", "external_id": "visitor-7f3a"},
    "name": "Zhang Wei",
    "attributes": {"tier": "vip"}
}))]
pub struct UpsertContact {
    /// The identity to look up.
    pub identity: ChannelIdentity,
    /// A display name to set, if given.
    #[serde(default)]
    pub name: Option<String>,
    /// Attributes to set; others are kept.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// Merges another contact into this one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"source_contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c99"}))]
pub struct MergeContacts {
    /// The contact merged in: its identities and conversations move to this contact, and its
    /// id answers with this contact from then on.
    pub source_contact_id: String,
}

/// A customer satisfaction rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Csat {
    /// 1 (worst) to 5 (best).
    #[schema(minimum = 1, maximum = 5, example = 5)]
    pub score: u32,
    /// The customer's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When it was given (RFC 3339).
    #[schema(format = DateTime)]
    pub submitted_at: String,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0d",
    "channel": "web",
    "subject": "Order 8812 has not arrived",
    "status": "assigned",
    "priority": "high",
    "tags": ["delivery"],
    "attributes": {"order_id": "8812"},
    "agent_id": "agt_li_wei",
    "message_count": 4,
    "created_at": "2025-05-20T08:31:02.001Z",
    "updated_at": "2025-05-20T08:40:11.2Z"
}))]
pub struct Conversation {
    /// `conv_…`.
    pub id: String,
    /// The contact it is with.
    pub contact_id: String,
    /// The channel it was opened on.
    pub channel: String,
    /// The subject given when it was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its status.
    pub status: Status,
    /// Its priority.
    pub priority: Priority,
    /// Its tags, sorted.
    pub tags: Vec<String>,
    /// Its custom attributes.
    pub attributes: BTreeMap<String, String>,
    /// The agent it is assigned to, when `assigned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// How many messages it has.
    pub message_count: u64,
    /// The customer's rating, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<Csat>,
    /// When it was opened (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<pb::Conversation> for Conversation {
    fn from(conversation: pb::Conversation) -> Self {
        let status = Status::from_proto(conversation.status()).unwrap_or(Status::Bot);
        let priority = Priority::from_proto(conversation.priority());
        Conversation {
            id: conversation.id,
            contact_id: conversation.contact_id,
            channel: conversation.channel,
            subject: non_empty(conversation.subject),
            status,
            priority,
            tags: conversation.tags,
            attributes: conversation.attributes.into_iter().collect(),
            agent_id: non_empty(conversation.agent_id),
            message_count: conversation.message_count,
            csat: conversation.csat.map(|csat| Csat {
                score: csat.score,
                comment: non_empty(csat.comment),
                submitted_at: timestamp(csat.submitted_at),
            }),
            created_at: timestamp(conversation.created_at),
            updated_at: timestamp(conversation.updated_at),
        }
    }
}

/// Opens a conversation with a contact on a channel.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "contact_id": "ctc_0196f7b2c1d07a1b9e3c5d2f4a6b8c0d",
    "channel": "web",
    "subject": "Order 8812 has not arrived",
    "priority": "high",
    "tags": ["delivery"],
    "attributes": {"order_id": "8812"}
}))]
pub struct OpenConversation {
    /// The contact; it must exist.
    pub contact_id: String,
    /// The channel: lowercase letters, digits and `_` (such as `web`).
    pub channel: String,
    /// An optional subject, at most 200 characters.
    #[serde(default)]
    pub subject: Option<String>,
    /// `normal` when not given.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Custom attributes.
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// Changes a conversation; only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "status": "assigned",
    "agent_id": "agt_li_wei",
    "add_tags": ["refund"],
    "set_attributes": {"order_id": "8812"}
}))]
pub struct UpdateConversation {
    /// A new status; `assigned` needs `agent_id`.
    #[serde(default)]
    pub status: Option<Status>,
    /// The agent, with status `assigned`.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// A new priority.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Tags to add.
    #[serde(default)]
    pub add_tags: Option<Vec<String>>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Option<Vec<String>>,
    /// Attributes to set; others are kept.
    #[serde(default)]
    pub set_attributes: Option<BTreeMap<String, String>>,
    /// Attribute keys to remove.
    #[serde(default)]
    pub remove_attributes: Option<Vec<String>>,
}

/// A ready answer the customer can tap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuickReply {
    /// The button's label.
    #[schema(example = "Track my order")]
    pub title: String,
    /// What is sent back when tapped; the title when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "track_order")]
    pub payload: Option<String>,
}

/// A card with an optional image and link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The title.
    #[schema(example = "Order 8812")]
    pub title: String,
    /// A short description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "Shipped 18 May, 2 items")]
    pub subtitle: Option<String>,
    /// An image URL (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://shop.example.com/img/8812.png")]
    pub image_url: Option<String>,
    /// Where tapping the card leads (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://shop.example.com/orders/8812")]
    pub url: Option<String>,
}

/// A file attached by URL; the file itself is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The file's URL (https).
    #[schema(example = "https://files.example.com/receipt-8812.pdf")]
    pub url: String,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "application/pdf")]
    pub content_type: Option<String>,
    /// A file name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "receipt-8812.pdf")]
    pub name: Option<String>,
    /// Its size in bytes, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 48213)]
    pub size_bytes: Option<u64>,
}

/// Rich content of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RichContent {
    /// Buttons offering ready answers.
    #[serde(default)]
    pub quick_replies: Vec<QuickReply>,
    /// Cards, such as a product or an order.
    #[serde(default)]
    pub cards: Vec<Card>,
    /// Files by URL.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

impl RichContent {
    fn is_empty(&self) -> bool {
        self.quick_replies.is_empty() && self.cards.is_empty() && self.attachments.is_empty()
    }

    pub(crate) fn into_proto(self) -> pb::RichContent {
        pb::RichContent {
            quick_replies: self
                .quick_replies
                .into_iter()
                .map(|q| pb::QuickReply {
                    title: q.title,
                    payload: q.payload.unwrap_or_default(),
                })
                .collect(),
            cards: self
                .cards
                .into_iter()
                .map(|c| pb::Card {
                    title: c.title,
                    subtitle: c.subtitle.unwrap_or_default(),
                    image_url: c.image_url.unwrap_or_default(),
                    url: c.url.unwrap_or_default(),
                })
                .collect(),
            attachments: self
                .attachments
                .into_iter()
                .map(|a| pb::Attachment {
                    url: a.url,
                    content_type: a.content_type.unwrap_or_default(),
                    name: a.name.unwrap_or_default(),
                    size_bytes: a.size_bytes.unwrap_or_default(),
                })
                .collect(),
        }
    }

    fn from_proto(content: pb::RichContent) -> Self {
        RichContent {
            quick_replies: content
                .quick_replies
                .into_iter()
                .map(|q| QuickReply {
                    title: q.title,
                    payload: non_empty(q.payload),
                })
                .collect(),
            cards: content
                .cards
                .into_iter()
                .map(|c| Card {
                    title: c.title,
                    subtitle: non_empty(c.subtitle),
                    image_url: non_empty(c.image_url),
                    url: non_empty(c.url),
                })
                .collect(),
            attachments: content
                .attachments
                .into_iter()
                .map(|a| Attachment {
                    url: a.url,
                    content_type: non_empty(a.content_type),
                    name: non_empty(a.name),
                    size_bytes: (a.size_bytes != 0).then_some(a.size_bytes),
                })
                .collect(),
        }
    }
}

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "msg_0196f7b2c1d07a1b9e3c5d2f4a6b8c10",
    "conversation_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "role": "customer",
    "text": "My order 8812 has not arrived yet.",
    "position": 1,
    "created_at": "2025-05-20T08:31:02.5Z"
}))]
pub struct Message {
    /// `msg_…`.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// Who wrote it.
    pub role: Role,
    /// The text; empty when the message is only rich content.
    pub text: String,
    /// Rich content, when there is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<RichContent>,
    /// Who wrote it within the role (such as an agent id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// Its position in the conversation, from 1, without gaps.
    pub position: u64,
    /// When it was posted (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<pb::Message> for Message {
    fn from(message: pb::Message) -> Self {
        let content = message
            .content
            .map(RichContent::from_proto)
            .filter(|content| !content.is_empty());
        Message {
            id: message.id,
            conversation_id: message.conversation_id,
            // The service only stores the four roles; an unknown one would be a newer role.
            role: Role::parse(&message.role).unwrap_or(Role::System),
            text: message.text,
            content,
            author_id: non_empty(message.author_id),
            position: message.position,
            created_at: timestamp(message.created_at),
        }
    }
}

/// Adds a message to a conversation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "role": "agent",
    "text": "Sorry about that! Here is the tracking link.",
    "content": {"cards": [{"title": "Order 8812", "url": "https://shop.example.com/orders/8812"}]},
    "author_id": "agt_li_wei"
}))]
pub struct PostMessage {
    /// Who writes it. A customer writing to a resolved conversation reopens it.
    pub role: Role,
    /// The text; required unless `content` has something. At most 16 KiB by default.
    #[serde(default)]
    pub text: Option<String>,
    /// Rich content.
    #[serde(default)]
    pub content: Option<RichContent>,
    /// Who writes it within the role, such as an agent id.
    #[serde(default)]
    pub author_id: Option<String>,
}

impl PostMessage {
    pub(crate) fn role_name(&self) -> &'static str {
        self.role.as_str()
    }
}

/// Rates a resolved (or closed) conversation, once.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"score": 5, "comment": "Quick and friendly, thanks!"}))]
pub struct SubmitCsat {
    /// 1 (worst) to 5 (best).
    #[schema(minimum = 1, maximum = 5)]
    pub score: u32,
    /// An optional comment, at most 2,000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConversationPage {
    /// The conversations, newest first.
    pub conversations: Vec<Conversation>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

impl From<pb::ListConversationsResponse> for ConversationPage {
    fn from(page: pb::ListConversationsResponse) -> Self {
        ConversationPage {
            conversations: page.conversations.into_iter().map(Conversation::from).collect(),
            next_page_token: non_empty(page.next_page_token),
        }
    }
}

/// A page of messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

impl From<pb::ListMessagesResponse> for MessagePage {
    fn from(page: pb::ListMessagesResponse) -> Self {
        MessagePage {
            messages: page.messages.into_iter().map(Message::from).collect(),
            next_page_token: non_empty(page.next_page_token),
        }
    }
}

pub(crate) fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// RFC 3339 in UTC; the Unix epoch for a missing time, which the service never sends.
pub(crate) fn timestamp(time: Option<prost_types::Timestamp>) -> String {
    time.unwrap_or_default().to_string()
}

/// RFC 3339 in UTC, for the times the routing API gives in milliseconds since the epoch.
pub(crate) fn timestamp_ms(ms: i64) -> String {
    timestamp(Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp_ms(1_747_729_800_123), "2025-05-20T08:30:00.123Z");
        assert_eq!(timestamp_ms(-1), "1969-12-31T23:59:59.999Z");
        let time = prost_types::Timestamp {
            seconds: 1_747_729_800,
            nanos: 123_000_000,
        };
        assert_eq!(timestamp(Some(time)), "2025-05-20T08:30:00.123Z");
        assert_eq!(timestamp(None), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn enums_are_lowercase_strings() {
        assert_eq!(serde_json::to_value(Status::Assigned).unwrap(), "assigned");
        assert_eq!(serde_json::to_value(Priority::Urgent).unwrap(), "urgent");
        assert_eq!(serde_json::to_value(Role::Customer).unwrap(), "customer");
        for (name, status) in Status::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), name);
        }
        for (name, priority) in Priority::ALL {
            assert_eq!(serde_json::to_value(priority).unwrap(), name);
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<PostMessage>(r#"{"role":"customer","txt":"hi"}"#).unwrap_err();
        assert!(error.to_string().contains("unknown field `txt`"), "{error}");
    }
}
