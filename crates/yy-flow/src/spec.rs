//! The flow document as written: the serde shapes of JSON and YAML flows.
//!
//! These types only describe the shape; [`crate::Flow`] checks the meaning (references, loops,
//! templates, slots, limits). Every object refuses fields it does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole flow document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// The flow's key, stable across versions: 1 to 64 characters of `a-z`, `0-9`, `_`, `-`.
    pub id: String,
    /// The version of this document, from 1; a state runs with the version it started with.
    pub version: u64,
    /// A name for people (any language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A description for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts the flow.
    #[serde(default, skip_serializing_if = "Triggers::is_empty")]
    pub triggers: Triggers,
    /// The id of the first node.
    pub start: String,
    /// The nodes, in any order.
    pub nodes: Vec<NodeSpec>,
}

/// What starts a flow: a message whose top intent is listed, or whose text contains a keyword.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triggers {
    /// Intent names (as the language understanding names them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<String>,
    /// Keywords, compared ignoring case; Chinese works as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

impl Triggers {
    /// No intent and no keyword: the flow is only started explicitly.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty() && self.keywords.is_empty()
    }
}

/// A text the bot says: one string for every language, or one per language (`zh`, `en`; at
/// least one). The engine picks the conversation's language and falls back to the other.
/// Either form may hold templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Text {
    /// The same text whatever the language.
    Plain(String),
    /// A text per language.
    Localized(Localized),
}

/// A text per language; at least one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    /// Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zh: Option<String>,
    /// English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Written by hand rather than `untagged`, whose error ("did not match any variant")
        // would not tell the author what to write.
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or an object with \"zh\" and/or \"en\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text::Plain(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text::Plain(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Text, A::Error> {
                Localized::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Text::Localized)
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

impl Text {
    /// Every string of this text, for checks that apply to each.
    pub(crate) fn variants(&self) -> Vec<(&'static str, &str)> {
        match self {
            Text::Plain(s) => vec![("", s.as_str())],
            Text::Localized(l) => {
                let mut out = Vec::new();
                if let Some(zh) = &l.zh {
                    out.push(("zh", zh.as_str()));
                }
                if let Some(en) = &l.en {
                    out.push(("en", en.as_str()));
                }
                out
            }
        }
    }
}

/// One node, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeSpec {
    /// Say something, then go on.
    Say(SayNode),
    /// Ask for a slot and wait for the answer.
    Ask(AskNode),
    /// Go to the first case whose condition holds.
    Branch(BranchNode),
    /// Call the business's HTTP API.
    Call(CallNode),
    /// Answer from the knowledge base.
    Kb(KbNode),
    /// Hand the conversation to human agents; ends the flow.
    Handoff(HandoffNode),
    /// Create a ticket, then go on.
    Ticket(TicketNode),
    /// Set slots, contact attributes and tags, then go on.
    Set(SetNode),
    /// End the flow.
    End(EndNode),
}

impl NodeSpec {
    /// The node's id.
    pub fn id(&self) -> &str {
        match self {
            NodeSpec::Say(n) => &n.id,
            NodeSpec::Ask(n) => &n.id,
            NodeSpec::Branch(n) => &n.id,
            NodeSpec::Call(n) => &n.id,
            NodeSpec::Kb(n) => &n.id,
            NodeSpec::Handoff(n) => &n.id,
            NodeSpec::Ticket(n) => &n.id,
            NodeSpec::Set(n) => &n.id,
            NodeSpec::End(n) => &n.id,
        }
    }

    /// The `type` as written.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeSpec::Say(_) => "say",
            NodeSpec::Ask(_) => "ask",
            NodeSpec::Branch(_) => "branch",
            NodeSpec::Call(_) => "call",
            NodeSpec::Kb(_) => "kb",
            NodeSpec::Handoff(_) => "handoff",
            NodeSpec::Ticket(_) => "ticket",
            NodeSpec::Set(_) => "set",
            NodeSpec::End(_) => "end",
        }
    }
}

/// `say`: text, quick replies and a card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    /// The node's id.
    pub id: String,
    /// What to say.
    pub text: Text,
    /// Buttons the customer can tap to answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<Text>,
    /// A rich card shown with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSpec>,
    /// Where to go next; absent: the flow ends here (unresolved, the bot answers as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A card: a title, optional text and image, buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// The title.
    pub title: Text,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// An image URL (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Buttons: each opens a URL or sends a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<CardButton>,
}

/// A card button: exactly one of `url` and `reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardButton {
    /// The label.
    pub label: Text,
    /// A URL to open (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A reply to send as the customer's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Text>,
}

/// `ask`: capture a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskNode {
    /// The node's id.
    pub id: String,
    /// The slot the answer fills.
    pub slot: String,
    /// The question.
    pub prompt: Text,
    /// What makes an answer valid, and the value it gives.
    pub validate: ValidatorSpec,
    /// Said instead of the prompt after an invalid answer; absent: the prompt again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprompt: Option<Text>,
    /// Answers allowed in all, 1 to 10 (3 when absent); after the last invalid one the flow
    /// goes to `on_invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u8>,
    /// Buttons offered with the question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<Text>,
    /// Try the message that started the flow first: when it is a valid answer (and the slot is
    /// still empty) the slot is filled from it and the question is not asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefill: bool,
    /// Where to go with a valid answer.
    pub next: String,
    /// Where to go when every attempt was invalid.
    pub on_invalid: String,
}

/// How an `ask` checks the answer. Written `{"pattern": "..."}`, `{"choice": [...]}`,
/// `{"number": {...}}`, `{"date": {...}}`, `"order_number"` or `{"text": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidatorSpec {
    /// A regular expression found in the answer; the value is capture group 1, or the match.
    Pattern(String),
    /// One of a set of options, each with synonyms.
    Choice(Vec<ChoiceOption>),
    /// A number, optionally in a range.
    Number(NumberRule),
    /// A calendar date.
    Date(DateRule),
    /// An order number as the language understanding recognises it.
    OrderNumber,
    /// Any non-empty text.
    Text(TextRule),
}

/// One option of a `choice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    /// The slot's value when chosen (also accepted as an answer).
    pub value: String,
    /// Other answers that choose it, in any language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
}

/// A `number` answer's bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRule {
    /// The smallest accepted value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest accepted value (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Only whole numbers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integer: bool,
}

/// A `date` answer's range, relative to the local date of the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRule {
    /// Which dates are accepted (any when absent).
    #[serde(default)]
    pub range: DateRange,
}

/// Which dates a `date` answer may be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateRange {
    /// Any date.
    #[default]
    Any,
    /// Today or earlier.
    Past,
    /// Today or later.
    Future,
}

/// A `text` answer's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRule {
    /// The longest accepted answer in characters (500 when absent, at most 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u16>,
}

/// `branch`: the first case whose condition holds, else `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    /// The node's id.
    pub id: String,
    /// The cases, tried in order.
    pub cases: Vec<BranchCase>,
    /// Where to go when no case holds.
    pub default: String,
}

/// One case of a `branch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchCase {
    /// The condition, in the condition language (see the crate documentation).
    pub when: Value,
    /// Where to go when it holds.
    pub next: String,
}

/// `call`: an HTTP request to the business's API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallNode {
    /// The node's id.
    pub id: String,
    /// The request.
    pub request: RequestSpec,
    /// Milliseconds to wait for an answer, 100 to 30000 (5000 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    /// Attempts after the first when one fails, 0 to 5 (0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u8>,
    /// Milliseconds before the first retry, doubled for each further one, 0 to 60000 (500 when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u32>,
    /// Slots filled from the response: slot name to a path such as `body.order.status` or
    /// `status`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub save: BTreeMap<String, String>,
    /// Where to go after a 2xx response.
    pub next: String,
    /// Where to go for particular non-2xx statuses (`"404": "not_found"`), without retrying.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_status: BTreeMap<String, String>,
    /// Where to go when the call failed: every attempt failed or timed out, or a status that is
    /// neither 2xx nor in `on_status`.
    pub on_error: String,
}

/// An HTTP request; strings are templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (`GET` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// An absolute `http` or `https` URL, or one starting with a `{{secrets.…}}` base.
    pub url: String,
    /// Header name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body; each string in it is a template (secrets are not allowed in the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// `kb`: ask the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbNode {
    /// The node's id.
    pub id: String,
    /// The query (a template); absent: the customer's last message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Where to go once the knowledge base answered.
    pub next: String,
    /// Where to go when it had no answer above its threshold; absent: `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_answer: Option<String>,
}

/// `handoff`: to a queue of human agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffNode {
    /// The node's id.
    pub id: String,
    /// The queue's name.
    pub queue: String,
    /// 1 to 10, higher served first (5 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// A note for the agent (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `ticket`: create a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketNode {
    /// The node's id.
    pub id: String,
    /// Ticket field to value (templates), such as `subject` and `description`.
    pub fields: BTreeMap<String, String>,
    /// Where to go next.
    pub next: String,
}

/// `set`: slots, contact attributes, tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNode {
    /// The node's id.
    pub id: String,
    /// Slot to value (templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, String>,
    /// Contact attribute to value (templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Tags to add to the conversation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where to go next.
    pub next: String,
}

/// `end`: the flow is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    /// The node's id.
    pub id: String,
    /// Resolve the conversation (true when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<bool>,
    /// Ask the customer for a satisfaction rating.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ask_csat: bool,
}
