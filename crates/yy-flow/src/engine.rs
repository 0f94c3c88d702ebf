//! Running a flow: pure and deterministic. The engine decides; the service acts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Flow;
use crate::condition::{Facts, Subject};
use crate::context::{Context, Lang, Message};
use crate::error::{EngineError, clip};
use crate::template::{Escape, Ref, Scope, SecretText, Template};
use crate::validate::{Body, LocalText, Node};

/// The longest message text the state keeps (for `{{message.text}}`), in characters.
const MAX_KEPT_TEXT: usize = 500;
/// The longest string slot or call value the state keeps, in characters.
const MAX_VALUE_CHARS: usize = 1000;
/// The largest list or object slot or call value the state keeps, as JSON bytes.
const MAX_VALUE_BYTES: usize = 2048;

/// The flow state of one conversation: small, serialisable, and tied to the flow id and
/// version it runs. It is the fold of the [`FlowEvent`]s ([`FlowState::apply`]); a service may
/// store either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// The flow's id.
    pub flow_id: String,
    /// The flow version this state runs; resuming with another version is refused.
    pub flow_version: u64,
    /// What the flow waits for, or how it finished.
    pub status: Status,
    /// The slots filled so far.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, Value>,
    /// The values of the last call's response that the flow reads (`status`, `body.…`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub call: BTreeMap<String, Value>,
    /// The language texts are said in.
    pub language: Lang,
    /// The customer's last message, as far as conditions and templates need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessage>,
}

/// The customer's last message, as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastMessage {
    /// The text, cut to 500 characters.
    pub text: String,
    /// The top intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// The sentiment score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<f32>,
}

/// What a running flow waits for, or how it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The customer's answer to an `ask`; `attempts` invalid answers so far.
    AwaitingMessage {
        /// The ask node.
        node: String,
        /// Invalid answers so far.
        attempts: u8,
    },
    /// The result of this attempt of a `call`.
    AwaitingCall {
        /// The call node.
        node: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// The knowledge base's answer.
    AwaitingKb {
        /// The kb node.
        node: String,
    },
    /// The flow is over.
    Finished {
        /// The node it ended at.
        node: String,
        /// How.
        outcome: Outcome,
    },
}

/// How a flow finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// An `end` node.
    Ended {
        /// The conversation is resolved.
        resolve: bool,
    },
    /// A `handoff` node.
    HandedOff {
        /// The queue.
        queue: String,
    },
    /// A `say` without `next`: the bot answers as usual from here on.
    Stopped,
}

/// Something that happened in a flow; the state is their fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FlowEvent {
    /// The flow started.
    Started {
        /// The flow's id.
        flow_id: String,
        /// Its version.
        flow_version: u64,
        /// The language at the start.
        language: Lang,
    },
    /// A customer message reached the flow.
    MessageReceived {
        /// The message (as kept: cut, without entities).
        message: LastMessage,
        /// Its language when known; it becomes the flow's language.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<Lang>,
    },
    /// An answer to an ask was invalid.
    AnswerRejected {
        /// The ask node.
        node: String,
        /// Invalid answers so far.
        attempts: u8,
    },
    /// A slot was filled.
    SlotSet {
        /// The slot.
        slot: String,
        /// Its value.
        value: Value,
    },
    /// A call's response (or failure) was taken; `values` replace the kept call values.
    CallAnswered {
        /// The call node.
        node: String,
        /// The attempt answered.
        attempt: u32,
        /// The HTTP status, `None` for a failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The values the flow reads from the response.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, Value>,
    },
    /// The flow now waits.
    Waiting(Status),
}

impl FlowState {
    /// Applies one event. Events out of order are applied as well as they can be: this never
    /// fails and never panics.
    pub fn apply(&mut self, event: &FlowEvent) {
        match event {
            FlowEvent::Started {
                flow_id,
                flow_version,
                language,
            } => {
                *self = FlowState::new(flow_id.clone(), *flow_version, *language);
            }
            FlowEvent::MessageReceived { message, language } => {
                self.last_message = Some(message.clone());
                if let Some(language) = language {
                    self.language = *language;
                }
            }
            FlowEvent::AnswerRejected { node, attempts } => {
                if let Status::AwaitingMessage { node: at, attempts: a } = &mut self.status
                    && at == node
                {
                    *a = *attempts;
                }
            }
            FlowEvent::SlotSet { slot, value } => {
                self.slots.insert(slot.clone(), value.clone());
            }
            FlowEvent::CallAnswered { values, .. } => self.call = values.clone(),
            FlowEvent::Waiting(status) => self.status = status.clone(),
        }
    }

    /// The state the events make, `None` when they do not begin with [`FlowEvent::Started`].
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a FlowEvent>) -> Option<FlowState> {
        let mut events = events.into_iter();
        let mut state = match events.next()? {
            FlowEvent::Started {
                flow_id,
                flow_version,
                language,
            } => FlowState::new(flow_id.clone(), *flow_version, *language),
            _ => return None,
        };
        for event in events {
            state.apply(event);
        }
        Some(state)
    }

    fn new(flow_id: String, flow_version: u64, language: Lang) -> Self {
        FlowState {
            flow_id,
            flow_version,
            status: Status::AwaitingMessage {
                node: String::new(),
                attempts: 0,
            },
            slots: BTreeMap::new(),
            call: BTreeMap::new(),
            language,
            last_message: None,
        }
    }

    /// Whether the flow is over.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, Status::Finished { .. })
    }

    /// The node the flow is at (waiting there, or finished there).
    pub fn node(&self) -> &str {
        match &self.status {
            Status::AwaitingMessage { node, .. }
            | Status::AwaitingCall { node, .. }
            | Status::AwaitingKb { node }
            | Status::Finished { node, .. } => node,
        }
    }
}

/// What comes back into a running flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    /// The customer wrote.
    Message(Message),
    /// The service carried out a [`Effect::Call`].
    CallResult(CallResult),
    /// The service carried out an [`Effect::Kb`].
    KbResult {
        /// The knowledge base had an answer above its threshold (the service said it).
        answered: bool,
    },
}

/// The result of one attempt of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallResult {
    /// The attempt this answers, as the effect gave it.
    pub attempt: u32,
    /// What happened.
    pub outcome: CallOutcome,
}

/// What one attempt of a call gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallOutcome {
    /// An HTTP response. `body` is the body parsed as JSON; a body that is not JSON is passed
    /// as a JSON string, an empty one as `null`.
    Response {
        /// The HTTP status.
        status: u16,
        /// The body.
        #[serde(default)]
        body: Value,
    },
    /// No response: a connection failure or a timeout.
    Failed {
        /// Why, for logs and replay reports.
        reason: String,
    },
}

/// A request for the service to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The URL; values from the conversation are percent-encoded, secrets are references.
    pub url: SecretText,
    /// Headers in name order; secrets are references.
    pub headers: Vec<(String, SecretText)>,
    /// A JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long to wait for the response.
    pub timeout_ms: u32,
}

/// A rendered card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The title.
    pub title: String,
    /// The body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<CardButton>,
}

/// A rendered card button: a URL to open or a reply to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardButton {
    /// The label.
    pub label: String,
    /// A URL to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A reply to send as the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// Something for the service to do, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Post a bot message.
    Say {
        /// The text.
        text: String,
        /// Quick replies to offer.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        quick_replies: Vec<String>,
        /// A card.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card: Option<Card>,
    },
    /// Send an HTTP request after `delay_ms`, then resume with an [`Input::CallResult`] for
    /// `attempt`.
    Call {
        /// The request.
        request: HttpRequest,
        /// This attempt, from 1.
        attempt: u32,
        /// The attempts the node allows in all.
        max_attempts: u32,
        /// Wait this long before sending (the backoff before a retry; 0 for the first attempt).
        delay_ms: u32,
    },
    /// Hand the conversation to a queue of human agents. The flow is over.
    Handoff {
        /// The queue.
        queue: String,
        /// 1 to 10.
        priority: u8,
        /// A note for the agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Create a ticket with these fields.
    CreateTicket {
        /// Field to value.
        fields: BTreeMap<String, String>,
    },
    /// Set a contact attribute.
    SetAttribute {
        /// The attribute.
        name: String,
        /// Its value.
        value: String,
    },
    /// Add a tag to the conversation.
    Tag {
        /// The tag.
        tag: String,
    },
    /// Answer from the knowledge base, then resume with an [`Input::KbResult`].
    Kb {
        /// The query.
        query: String,
    },
    /// The flow is over.
    End {
        /// Resolve the conversation.
        resolve: bool,
        /// Ask for a satisfaction rating.
        ask_csat: bool,
    },
    /// Wait for the customer's next message, then resume with an [`Input::Message`].
    AwaitInput,
}

/// An effect and the node that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Emitted {
    /// The node's id.
    pub node: String,
    /// What to do.
    #[serde(flatten)]
    pub effect: Effect,
}

/// What one start or resume produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The new state (the old one folded with `events`).
    pub state: FlowState,
    /// What happened, to append to the conversation's log.
    pub events: Vec<FlowEvent>,
    /// What the service must do, in order.
    pub effects: Vec<Emitted>,
    /// The nodes passed through, in order.
    pub visited: Vec<String>,
}

/// Runs flows. Stateless: every fact comes in as an argument.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engine;

/// The input names for [`EngineError::Unexpected`].
fn input_name(input: &Input) -> String {
    match input {
        Input::Message(_) => "a message".to_owned(),
        Input::CallResult(r) => format!("a call result for attempt {}", r.attempt),
        Input::KbResult { .. } => "a knowledge-base result".to_owned(),
    }
}

fn status_name(status: &Status) -> String {
    match status {
        Status::AwaitingMessage { node, .. } => format!("a message at {node:?}"),
        Status::AwaitingCall { node, attempt } => format!("the result of attempt {attempt} of {node:?}"),
        Status::AwaitingKb { node } => format!("a knowledge-base result at {node:?}"),
        Status::Finished { .. } => "nothing".to_owned(),
    }
}

impl Engine {
    /// Starts `flow`: runs from its start node until it waits or finishes. `trigger` is the
    /// message that started it, if any (its intent and sentiment are then known to conditions,
    /// its text to `{{message.text}}`). Never fails.
    pub fn start(flow: &Flow, ctx: &Context, trigger: Option<&Message>) -> Step {
        let mut run = Run::new(flow, ctx, FlowState::new(String::new(), 0, ctx.language));
        run.emit(FlowEvent::Started {
            flow_id: flow.id().to_owned(),
            flow_version: flow.version(),
            language: ctx.language,
        });
        if let Some(message) = trigger {
            run.receive(message);
        }
        run.trigger = trigger;
        run.go(flow.compiled.start);
        run.finish()
    }

    /// Resumes a waiting flow with `input`. Refuses (nothing changes) a state of another flow
    /// or version, a finished flow, and an input the flow does not wait for.
    pub fn resume(flow: &Flow, state: &FlowState, ctx: &Context, input: Input) -> Result<Step, EngineError> {
        if state.flow_id != flow.id() || state.flow_version != flow.version() {
            return Err(EngineError::WrongFlow {
                state: (state.flow_id.clone(), state.flow_version),
                flow: (flow.id().to_owned(), flow.version()),
            });
        }
        let node_of = |id: &str| {
            flow.node_index(id)
                .ok_or_else(|| EngineError::CorruptState(format!("no node {:?}", clip(id, 80))))
        };
        let unexpected = || EngineError::Unexpected {
            waiting_for: status_name(&state.status),
            got: input_name(&input),
        };
        let mut run = Run::new(flow, ctx, state.clone());
        match (&state.status, &input) {
            (Status::Finished { .. }, _) => return Err(EngineError::Finished),
            (Status::AwaitingMessage { node, attempts }, Input::Message(message)) => {
                let at = node_of(node)?;
                run.answer(at, *attempts, message)?;
            }
            (Status::AwaitingCall { node, attempt }, Input::CallResult(result)) => {
                if result.attempt != *attempt {
                    return Err(unexpected());
                }
                let at = node_of(node)?;
                run.call_result(at, *attempt, &result.outcome)?;
            }
            (Status::AwaitingKb { node }, Input::KbResult { answered }) => {
                let at = node_of(node)?;
                match flow.compiled.nodes.get(at) {
                    Some(Node::Kb { next, on_no_answer, .. }) => {
                        run.visited.push(node.clone());
                        run.go(if *answered { *next } else { *on_no_answer });
                    }
                    _ => return Err(EngineError::CorruptState(format!("{node:?} is not a kb node"))),
                }
            }
            _ => return Err(unexpected()),
        }
        Ok(run.finish())
    }
}

struct Run<'a> {
    flow: &'a Flow,
    ctx: &'a Context,
    /// The message that started the flow, while the first run goes on: `prefill` asks read it.
    trigger: Option<&'a Message>,
    state: FlowState,
    events: Vec<FlowEvent>,
    effects: Vec<Emitted>,
    visited: Vec<String>,
}

fn cap(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(clip_exact(&s, MAX_VALUE_CHARS)),
        Value::Array(_) | Value::Object(_) => {
            // A large structure is dropped rather than cut: half a list would mislead a condition.
            if serde_json::to_string(&value).map_or(usize::MAX, |s| s.len()) <= MAX_VALUE_BYTES {
                value
            } else {
                Value::Null
            }
        }
        other => other,
    }
}

fn clip_exact(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => text.get(..at).unwrap_or_default().to_owned(),
    }
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

impl Run<'_> {
    fn new<'a>(flow: &'a Flow, ctx: &'a Context, state: FlowState) -> Run<'a> {
        Run {
            flow,
            ctx,
            trigger: None,
            state,
            events: Vec::new(),
            effects: Vec::new(),
            visited: Vec::new(),
        }
    }

    fn finish(self) -> Step {
        Step {
            state: self.state,
            events: self.events,
            effects: self.effects,
            visited: self.visited,
        }
    }

    fn emit(&mut self, event: FlowEvent) {
        self.state.apply(&event);
        self.events.push(event);
    }

    fn effect(&mut self, node: usize, effect: Effect) {
        self.effects.push(Emitted {
            node: self.id(node).to_owned(),
            effect,
        });
    }

    fn id(&self, node: usize) -> &str {
        self.flow.compiled.ids.get(node).map_or("", String::as_str)
    }

    fn receive(&mut self, message: &Message) {
        self.emit(FlowEvent::MessageReceived {
            message: LastMessage {
                text: clip_exact(&message.text, MAX_KEPT_TEXT),
                intent: message.understanding.intent.clone(),
                sentiment: message.understanding.sentiment.filter(|s| s.is_finite()),
            },
            language: message.understanding.language,
        });
    }

    fn text(&self, text: &LocalText) -> String {
        let (first, second) = match self.state.language {
            Lang::Zh => (&text.zh, &text.en),
            Lang::En => (&text.en, &text.zh),
        };
        first
            .as_ref()
            .or(second.as_ref())
            .map(|t| t.render(self, Escape::None))
            .unwrap_or_default()
    }

    fn render(&self, template: &Template) -> String {
        template.render(self, Escape::None)
    }

    fn body(&self, body: &Body) -> Value {
        match body {
            Body::Text(t) => Value::String(self.render(t)),
            Body::List(items) => Value::Array(items.iter().map(|b| self.body(b)).collect()),
            Body::Object(fields) => Value::Object(fields.iter().map(|(k, b)| (k.clone(), self.body(b))).collect()),
            Body::Other(v) => v.clone(),
        }
    }

    /// An answer to the ask at `at`.
    fn answer(&mut self, at: usize, attempts: u8, message: &Message) -> Result<(), EngineError> {
        let Some(Node::Ask {
            slot,
            validator,
            max_attempts,
            next,
            on_invalid,
            ..
        }) = self.flow.compiled.nodes.get(at)
        else {
            return Err(EngineError::CorruptState(format!(
                "{:?} is not an ask node",
                self.id(at)
            )));
        };
        self.receive(message);
        self.visited.push(self.id(at).to_owned());
        match validator.check(message, self.ctx.local()) {
            Some(value) => {
                self.emit(FlowEvent::SlotSet {
                    slot: slot.clone(),
                    value: cap(value),
                });
                self.go(*next);
            }
            None => {
                let attempts = attempts.saturating_add(1);
                self.emit(FlowEvent::AnswerRejected {
                    node: self.id(at).to_owned(),
                    attempts,
                });
                if attempts >= *max_attempts {
                    self.go(*on_invalid);
                } else {
                    self.prompt(at, true);
                }
            }
        }
        Ok(())
    }

    /// Asks the question of the ask at `at` (again, with the re-prompt, when `again`).
    fn prompt(&mut self, at: usize, again: bool) {
        let Some(Node::Ask {
            prompt,
            reprompt,
            quick_replies,
            ..
        }) = self.flow.compiled.nodes.get(at)
        else {
            return;
        };
        let text = match reprompt {
            Some(r) if again => self.text(r),
            _ => self.text(prompt),
        };
        let quick_replies = quick_replies.iter().map(|q| self.text(q)).collect();
        let attempts = match &self.state.status {
            Status::AwaitingMessage { node, attempts } if again && node == self.id(at) => *attempts,
            _ => 0,
        };
        self.effect(
            at,
            Effect::Say {
                text,
                quick_replies,
                card: None,
            },
        );
        self.emit(FlowEvent::Waiting(Status::AwaitingMessage {
            node: self.id(at).to_owned(),
            attempts,
        }));
        self.effect(at, Effect::AwaitInput);
    }

    fn call_result(&mut self, at: usize, attempt: u32, outcome: &CallOutcome) -> Result<(), EngineError> {
        let Some(Node::Call {
            retries,
            save,
            next,
            on_status,
            on_error,
            ..
        }) = self.flow.compiled.nodes.get(at)
        else {
            return Err(EngineError::CorruptState(format!(
                "{:?} is not a call node",
                self.id(at)
            )));
        };
        self.visited.push(self.id(at).to_owned());
        let max_attempts = u32::from(*retries) + 1;
        let (status, body) = match outcome {
            CallOutcome::Response { status, body } => (Some(*status), body),
            CallOutcome::Failed { .. } => (None, &Value::Null),
        };
        let success = status.is_some_and(|s| (200..=299).contains(&s));
        let routed = status.and_then(|s| on_status.iter().find(|(code, _)| *code == s).map(|(_, t)| *t));
        let retry = !success && routed.is_none() && status.is_none_or(retryable) && attempt < max_attempts;
        if retry {
            self.emit(FlowEvent::CallAnswered {
                node: self.id(at).to_owned(),
                attempt,
                status,
                values: BTreeMap::new(),
            });
            self.request(at, attempt + 1);
            return Ok(());
        }
        let mut values = BTreeMap::new();
        if let Some(status) = status {
            for path in &self.flow.compiled.call_paths {
                if let Some(v) = path.extract(status, body) {
                    values.insert(path.key(), cap(v));
                }
            }
        }
        self.emit(FlowEvent::CallAnswered {
            node: self.id(at).to_owned(),
            attempt,
            status,
            values,
        });
        if success {
            let status = status.unwrap_or(200);
            for (slot, path) in save {
                // A field the response lacks leaves the slot as it was: conditions can test
                // `present`.
                if let Some(value) = path.extract(status, body) {
                    self.emit(FlowEvent::SlotSet {
                        slot: slot.clone(),
                        value: cap(value),
                    });
                }
            }
            self.go(*next);
        } else {
            self.go(routed.unwrap_or(*on_error));
        }
        Ok(())
    }

    /// Asks the service to send attempt `attempt` of the call at `at`.
    fn request(&mut self, at: usize, attempt: u32) {
        let Some(Node::Call {
            method,
            url,
            headers,
            body,
            timeout_ms,
            retries,
            backoff_ms,
            ..
        }) = self.flow.compiled.nodes.get(at)
        else {
            return;
        };
        let delay_ms = if attempt <= 1 {
            0
        } else {
            backoff_ms.saturating_mul(1u32 << (attempt - 2).min(16))
        };
        let request = HttpRequest {
            method: method.clone(),
            url: url.render_secret(self, Escape::Url),
            headers: headers
                .iter()
                .map(|(name, value)| (name.clone(), value.render_secret(self, Escape::Header)))
                .collect(),
            body: body.as_ref().map(|b| self.body(b)),
            timeout_ms: *timeout_ms,
        };
        self.effect(
            at,
            Effect::Call {
                request,
                attempt,
                max_attempts: u32::from(*retries) + 1,
                delay_ms,
            },
        );
        self.emit(FlowEvent::Waiting(Status::AwaitingCall {
            node: self.id(at).to_owned(),
            attempt,
        }));
    }

    fn end(&mut self, at: usize, outcome: Outcome) {
        self.emit(FlowEvent::Waiting(Status::Finished {
            node: self.id(at).to_owned(),
            outcome,
        }));
    }

    /// Runs from `node` until the flow waits or finishes. Validation refuses loops that never
    /// wait, so a turn passes each node at most once between two asks, and an ask is passed
    /// without waiting only once (a prefilled slot is set after that); the bound is a second
    /// guard.
    fn go(&mut self, mut node: usize) {
        let nodes = &self.flow.compiled.nodes;
        let bound = (nodes.len() + 1).saturating_mul(nodes.len() + 1);
        for _ in 0..bound {
            let Some(current) = nodes.get(node) else {
                break;
            };
            self.visited.push(self.id(node).to_owned());
            match current {
                Node::Say {
                    text,
                    quick_replies,
                    card,
                    next,
                } => {
                    let effect = Effect::Say {
                        text: self.text(text),
                        quick_replies: quick_replies.iter().map(|q| self.text(q)).collect(),
                        card: card.as_ref().map(|c| Card {
                            title: self.text(&c.title),
                            text: c.text.as_ref().map(|t| self.text(t)),
                            image_url: c.image_url.as_ref().map(|u| self.render(u)),
                            buttons: c
                                .buttons
                                .iter()
                                .map(|(label, url, reply)| CardButton {
                                    label: self.text(label),
                                    url: url.as_ref().map(|u| self.render(u)),
                                    reply: reply.as_ref().map(|r| self.text(r)),
                                })
                                .collect(),
                        }),
                    };
                    self.effect(node, effect);
                    match next {
                        Some(next) => node = *next,
                        None => {
                            self.effect(
                                node,
                                Effect::End {
                                    resolve: false,
                                    ask_csat: false,
                                },
                            );
                            self.end(node, Outcome::Stopped);
                            return;
                        }
                    }
                }
                Node::Ask {
                    slot,
                    validator,
                    prefill,
                    next,
                    ..
                } => {
                    let prefilled = match self.trigger {
                        Some(message) if *prefill && !self.state.slots.contains_key(slot) => {
                            validator.check(message, self.ctx.local())
                        }
                        _ => None,
                    };
                    match prefilled {
                        Some(value) => {
                            self.emit(FlowEvent::SlotSet {
                                slot: slot.clone(),
                                value: cap(value),
                            });
                            node = *next;
                        }
                        None => {
                            self.prompt(node, false);
                            return;
                        }
                    }
                }
                Node::Branch { cases, default } => {
                    node = cases
                        .iter()
                        .find(|(condition, _)| condition.holds(self))
                        .map_or(*default, |(_, target)| *target);
                }
                Node::Call { .. } => {
                    self.request(node, 1);
                    return;
                }
                Node::Kb { query, .. } => {
                    let query = match query {
                        Some(q) => self.render(q),
                        None => self
                            .state
                            .last_message
                            .as_ref()
                            .map(|m| m.text.clone())
                            .unwrap_or_default(),
                    };
                    self.effect(node, Effect::Kb { query });
                    self.emit(FlowEvent::Waiting(Status::AwaitingKb {
                        node: self.id(node).to_owned(),
                    }));
                    return;
                }
                Node::Handoff { queue, priority, note } => {
                    let effect = Effect::Handoff {
                        queue: queue.clone(),
                        priority: *priority,
                        note: note.as_ref().map(|n| self.render(n)),
                    };
                    self.effect(node, effect);
                    self.end(node, Outcome::HandedOff { queue: queue.clone() });
                    return;
                }
                Node::Ticket { fields, next } => {
                    let fields = fields.iter().map(|(k, v)| (k.clone(), self.render(v))).collect();
                    self.effect(node, Effect::CreateTicket { fields });
                    node = *next;
                }
                Node::Set {
                    slots,
                    attributes,
                    tags,
                    next,
                } => {
                    for (slot, value) in slots {
                        let value = self.render(value);
                        self.emit(FlowEvent::SlotSet {
                            slot: slot.clone(),
                            value: cap(Value::String(value)),
                        });
                    }
                    for (name, value) in attributes {
                        let value = self.render(value);
                        self.effect(
                            node,
                            Effect::SetAttribute {
                                name: name.clone(),
                                value,
                            },
                        );
                    }
                    for tag in tags {
                        self.effect(node, Effect::Tag { tag: tag.clone() });
                    }
                    node = *next;
                }
                Node::End { resolve, ask_csat } => {
                    self.effect(
                        node,
                        Effect::End {
                            resolve: *resolve,
                            ask_csat: *ask_csat,
                        },
                    );
                    self.end(node, Outcome::Ended { resolve: *resolve });
                    return;
                }
            }
        }
        // Only reachable if validation was bypassed: end rather than spin.
        self.effect(
            node,
            Effect::End {
                resolve: false,
                ask_csat: false,
            },
        );
        self.end(node, Outcome::Stopped);
    }
}

impl Scope for Run<'_> {
    fn value(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Slot(name) => self.state.slots.get(name).cloned(),
            Ref::ContactField(field) => match field.as_str() {
                "name" => self.ctx.contact.name.clone().map(Value::String),
                "id" => Some(Value::String(self.ctx.contact.id.clone())),
                _ => None,
            },
            Ref::ContactAttribute(key) => self.ctx.contact.attributes.get(key).cloned().map(Value::String),
            Ref::Call(path) => self.state.call.get(&path.key()).cloned(),
            Ref::Secret(_) => None,
            Ref::Conversation(field) => match field.as_str() {
                "id" => Some(Value::String(self.ctx.conversation_id.clone())),
                "channel" => Some(Value::String(self.ctx.channel.clone())),
                _ => None,
            },
            Ref::MessageText => self.state.last_message.as_ref().map(|m| Value::String(m.text.clone())),
        }
    }
}

impl Facts for Run<'_> {
    fn subject(&self, subject: &Subject) -> Option<Value> {
        match subject {
            Subject::Slot(name) => self.state.slots.get(name).cloned(),
            Subject::Contact(key) => self.ctx.contact.attributes.get(key).cloned().map(Value::String),
            Subject::Call(path) => self.state.call.get(&path.key()).cloned(),
        }
    }
    fn intent(&self) -> Option<&str> {
        self.state.last_message.as_ref()?.intent.as_deref()
    }
    fn sentiment(&self) -> Option<f32> {
        self.state.last_message.as_ref()?.sentiment
    }
    fn channel(&self) -> &str {
        &self.ctx.channel
    }
    fn language(&self) -> Lang {
        self.state.language
    }
    fn local_time(&self) -> (u32, u32) {
        let local = self.ctx.local();
        (local.minute, local.weekday)
    }
}
