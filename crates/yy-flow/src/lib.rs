//! Dialogue flows for the bot: versioned JSON or YAML documents, validated completely, and run
//! by a pure, deterministic engine.
//!
//! A tenant writes a flow as a graph of nodes — `say`, `ask`, `branch`, `call`, `kb`,
//! `handoff`, `ticket`, `set`, `end` — started by an intent or a keyword. [`Flow::parse_json`]
//! and [`Flow::parse_yaml`] check it and compile it, reporting every mistake at once, each
//! naming the node and the field ([`FlowError`]). [`Engine::start`] and [`Engine::resume`] run
//! it one turn at a time: each returns a [`Step`] with the new [`FlowState`], the
//! [`FlowEvent`]s that made it (the state is their fold), and the [`Effect`]s for the service
//! to carry out (say this, call that API, hand off, create a ticket…). The crate does no IO,
//! reads no clock (the time is in the [`Context`]) and uses no randomness, so a run can be
//! replayed exactly: [`replay`] runs a flow version over a [`RecordedConversation`] with the
//! recorded call results, and [`diff`] reports, turn by turn, where two versions answer
//! differently.
//!
//! The document format, the condition and template languages, the effects contract and replay
//! are described in full in `docs/flows.md` of the repository; this page is the summary.
//!
//! # A flow
//!
//! ```json
//! {
//!   "id": "order_status", "version": 1, "start": "ask_order",
//!   "triggers": {"intents": ["order_status"], "keywords": ["查询订单"]},
//!   "nodes": [
//!     {"id": "ask_order", "type": "ask", "slot": "order_number", "validate": "order_number",
//!      "prompt": {"zh": "请告诉我订单号。", "en": "What is your order number?"},
//!      "next": "lookup", "on_invalid": "human"},
//!     {"id": "lookup", "type": "call", "retries": 2, "timeout_ms": 3000,
//!      "request": {"url": "{{secrets.order_api_base}}/orders/{{slot.order_number}}"},
//!      "save": {"order_status": "body.status"}, "next": "tell", "on_error": "human"},
//!     {"id": "tell", "type": "say", "text": "{{slot.order_number}}: {{slot.order_status}}", "next": "done"},
//!     {"id": "done", "type": "end", "ask_csat": true},
//!     {"id": "human", "type": "handoff", "queue": "general"}
//!   ]
//! }
//! ```
//!
//! The shipped example `examples/order_status.json` is the complete order-status flow: it asks
//! for the order number (re-prompting on an invalid one), calls the order API with a timeout
//! and two retries, tells the status per status, asks whether that helped, and hands off to a
//! human on a negative answer or a negative sentiment, or when the API stays down.
//!
//! # Validation
//!
//! Refused, with a [`FlowErrorKind`]: bad shape (unknown fields anywhere, missing ones, wrong
//! types, unknown node types; duplicate keys); bad ids and duplicate node ids; references
//! (`start`, `next`, branch targets, `on_invalid`, `on_status`, `on_error`, `on_no_answer`) to
//! nodes that do not exist; **loops that never wait for input** — a cycle of nodes none of which
//! is an `ask`, reported at the cycle's first node and naming all of them; **bad templates**
//! (unclosed, unknown namespace, secrets outside a call's URL and headers); conditions that do
//! not parse; invalid regular expressions, ranges and limits; a slot read somewhere that no node
//! ever sets. Warned, the flow accepted ([`Flow::warnings`]): a slot read where some path from
//! the start has not set it yet (it reads as empty), and nodes no path reaches.
//!
//! Limits: [`MAX_DOCUMENT_BYTES`] of text, [`MAX_NODES`] nodes, [`MAX_SLOTS`] slots; per node
//! 20 quick replies, buttons, headers, saved fields, ticket fields and set entries, 50 branch
//! cases and choice options; texts of 4000 characters; conditions nested 8 deep.
//!
//! # Running
//!
//! ```
//! use yy_flow::{CallOutcome, CallResult, Context, Effect, Engine, Flow, Input, Message};
//!
//! let flow = Flow::parse_json(include_str!("../examples/order_status.json")).expect("valid");
//! let ctx = Context::default();
//! let step = Engine::start(&flow, &ctx, Some(&Message::text("查询订单")));
//! assert!(matches!(step.effects.last().map(|e| &e.effect), Some(Effect::AwaitInput)));
//!
//! let step = Engine::resume(&flow, &step.state, &ctx, Input::Message(Message::text("A-1024"))).unwrap();
//! let Some(Effect::Call { request, attempt: 1, .. }) = step.effects.last().map(|e| &e.effect) else { panic!() };
//! assert_eq!(request.url.to_string(), "{{secrets.order_api_base}}/orders/A-1024");
//!
//! let answer = Input::CallResult(CallResult {
//!     attempt: 1,
//!     outcome: CallOutcome::Response { status: 200, body: serde_json::json!({"status": "shipped"}) },
//! });
//! let step = Engine::resume(&flow, &step.state, &ctx, answer).unwrap();
//! assert_eq!(step.state.slots["order_status"], "shipped");
//! ```
//!
//! The service's side of the contract: carry out the effects in order; after
//! [`Effect::Call`] wait `delay_ms`, resolve the secrets ([`SecretText::resolve`]), send, and
//! resume with [`Input::CallResult`] for that attempt (the engine decides about retries); after
//! [`Effect::Kb`] answer from the knowledge base and resume with [`Input::KbResult`]; after
//! [`Effect::AwaitInput`] resume with the customer's next [`Input::Message`]; after
//! [`Effect::Handoff`] or [`Effect::End`] the flow is over. Append [`Step::events`] to the
//! conversation's log (or store [`Step::state`]), and record every input too: replay needs the
//! messages and the full call results.

mod answer;
mod condition;
mod context;
mod engine;
mod error;
mod parse;
mod replay;
mod spec;
mod template;
mod validate;

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use context::{Contact, Context, Lang, Message, Understanding};
pub use engine::{
    CallOutcome, CallResult, Card, CardButton, Effect, Emitted, Engine, FlowEvent, FlowState, HttpRequest, Input,
    LastMessage, Outcome, Status, Step,
};
pub use error::{EngineError, FlowError, FlowErrorKind, Severity};
pub use replay::{
    Difference, RecordedCall, RecordedConversation, RecordedKb, RecordedTurn, Transcript, TurnNote, TurnOutput,
    compare, diff, replay,
};
pub use spec::{
    AskNode, BranchCase, BranchNode, CallNode, CardButton as CardButtonSpec, CardSpec, ChoiceOption, DateRange,
    DateRule, EndNode, FlowSpec, HandoffNode, KbNode, Localized, NodeSpec, NumberRule, RequestSpec, SayNode, SetNode,
    Text, TextRule, TicketNode, Triggers, ValidatorSpec,
};
pub use template::{SecretPart, SecretText};

/// The largest flow text accepted, in bytes: a stored flow must fit in one event.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The most nodes a flow may have.
pub const MAX_NODES: usize = 200;

/// The most distinct slots a flow may set.
pub const MAX_SLOTS: usize = 100;

/// A validated, compiled flow version: with a [`FlowState`] and a [`Context`], all the engine
/// needs.
///
/// Invariants: it passed every check in the crate documentation — every reference names a
/// node, every cycle passes through an `ask`, every template parses. Immutable, `Send` and
/// `Sync`: share one per version behind an `Arc`.
///
/// Serialises as the document ([`FlowSpec`]); deserialising validates again.
#[derive(Debug, Clone)]
pub struct Flow {
    spec: FlowSpec,
    compiled: validate::Compiled,
    index: HashMap<String, usize>,
    keywords: Vec<String>,
}

/// Why a message starts a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum Trigger {
    /// The message's intent is one of the flow's.
    Intent(String),
    /// The message contains one of the flow's keywords.
    Keyword(String),
}

/// Where a flow version is in its life. The document does not carry it: the service keeps it
/// beside each version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    /// Being written; can be replayed, not started for customers.
    Draft,
    /// Live: new conversations start it.
    Published,
    /// Retired: conversations already in it finish it, none start it.
    Archived,
}

impl FlowStatus {
    /// Whether a version may move from `self` to `next`: a draft is published or archived, a
    /// published version is archived (publishing a newer one archives it), an archived one
    /// stays archived. Staying put is allowed.
    pub fn can_become(self, next: FlowStatus) -> bool {
        use FlowStatus::*;
        matches!(
            (self, next),
            (Draft, _) | (Published, Published | Archived) | (Archived, Archived)
        )
    }

    /// Whether new conversations may start a version in this status.
    pub fn starts_conversations(self) -> bool {
        self == FlowStatus::Published
    }
}

impl Flow {
    /// Parses and validates a flow written as JSON. On failure, every mistake found (warnings
    /// are not failures; see [`Flow::warnings`]).
    pub fn parse_json(text: &str) -> Result<Flow, Vec<FlowError>> {
        let value = parse::json_value(text).map_err(|e| vec![e])?;
        Self::from_value(value)
    }

    /// Parses and validates a flow written as YAML (the same document as JSON).
    pub fn parse_yaml(text: &str) -> Result<Flow, Vec<FlowError>> {
        let value = parse::yaml_value(text).map_err(|e| vec![e])?;
        Self::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Flow, Vec<FlowError>> {
        let total = value.get("nodes").and_then(|n| n.as_array()).map_or(0, Vec::len);
        let parsed = parse::spec_from_value(value)?;
        let mut errors = parsed.errors;
        let compiled = validate::compile(&parsed.spec, &parsed.positions, total, &parsed.unreadable, &mut errors);
        match compiled {
            Some(compiled) if errors.is_empty() => Ok(Self::assemble(parsed.spec, compiled)),
            _ => {
                errors.sort_by_key(|e| e.node_index.map_or(0, |i| i + 1));
                Err(errors)
            }
        }
    }

    /// Validates a flow built in code (or read by other means).
    pub fn from_spec(spec: FlowSpec) -> Result<Flow, Vec<FlowError>> {
        let positions = (0..spec.nodes.len()).collect::<Vec<_>>();
        let mut errors = Vec::new();
        match validate::compile(&spec, &positions, spec.nodes.len(), &[], &mut errors) {
            Some(compiled) if errors.is_empty() => Ok(Self::assemble(spec, compiled)),
            _ => {
                errors.sort_by_key(|e| e.node_index.map_or(0, |i| i + 1));
                Err(errors)
            }
        }
    }

    fn assemble(spec: FlowSpec, compiled: validate::Compiled) -> Flow {
        let index = compiled.ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        let keywords = spec.triggers.keywords.iter().map(|k| k.to_lowercase()).collect();
        Flow {
            spec,
            compiled,
            index,
            keywords,
        }
    }

    /// The flow's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// This version's number.
    pub fn version(&self) -> u64 {
        self.spec.version
    }

    /// The document (normalised: absent optional fields left out).
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// What the author should look at: slots that may be read before they are set, nodes no
    /// path reaches. Empty for a clean flow.
    pub fn warnings(&self) -> &[FlowError] {
        &self.compiled.warnings
    }

    /// The node ids in document order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.compiled.ids.iter().map(String::as_str)
    }

    pub(crate) fn node_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Whether `message` starts this flow: its intent is one of the flow's intents (checked
    /// first), or its text contains one of the keywords, ignoring case.
    pub fn triggered_by(&self, message: &Message) -> Option<Trigger> {
        if let Some(intent) = &message.understanding.intent
            && self.spec.triggers.intents.iter().any(|i| i == intent)
        {
            return Some(Trigger::Intent(intent.clone()));
        }
        let text = message.text.to_lowercase();
        self.keywords
            .iter()
            .position(|k| text.contains(k.as_str()))
            .and_then(|i| self.spec.triggers.keywords.get(i))
            .map(|k| Trigger::Keyword(k.clone()))
    }
}

impl PartialEq for Flow {
    /// Two flows are equal when they were written the same.
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Serialize for Flow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Flow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = FlowSpec::deserialize(deserializer)?;
        Flow::from_spec(spec).map_err(|errors| {
            let list = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            serde::de::Error::custom(format!("invalid flow: {list}"))
        })
    }
}
