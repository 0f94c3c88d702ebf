//! Replay: run a flow version over a recorded conversation, with no side effects, and compare
//! two runs turn by turn.

use serde::{Deserialize, Serialize};

use crate::Flow;
use crate::context::{Context, Message};
use crate::engine::{CallOutcome, CallResult, Effect, Emitted, Engine, Input, Outcome, Status, Step};
use crate::error::EngineError;

/// A conversation as the log recorded it: the customer's messages, and the answers the outside
/// world gave to the calls and knowledge-base queries made while it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordedConversation {
    /// The conversation's id.
    pub id: String,
    /// The context when the flow started.
    pub context: Context,
    /// The customer's messages in order; the first started the flow.
    pub turns: Vec<RecordedTurn>,
    /// Every call made while the conversation ran, in order.
    pub calls: Vec<RecordedCall>,
    /// Every knowledge-base query made while it ran, in order.
    pub kb: Vec<RecordedKb>,
}

/// One customer message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordedTurn {
    /// When it arrived (ms since the epoch); absent: the context's time.
    pub now_ms: Option<i64>,
    /// The message with its understanding.
    pub message: Message,
}

/// One call attempt and what it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    /// The method.
    pub method: String,
    /// The URL as the effect displayed it: secrets as `{{secrets.NAME}}`.
    pub url: String,
    /// What the attempt gave.
    pub outcome: CallOutcome,
}

/// One knowledge-base query and whether it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedKb {
    /// The query.
    pub query: String,
    /// Whether the knowledge base had an answer.
    pub answered: bool,
}

/// What a flow version did over a recorded conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The conversation's id.
    pub conversation_id: String,
    /// The flow's id.
    pub flow_id: String,
    /// The flow version replayed.
    pub flow_version: u64,
    /// One entry per recorded message.
    pub turns: Vec<TurnOutput>,
    /// How the flow ended, if it did.
    pub outcome: Option<Outcome>,
}

/// What the flow did for one message (and the calls and queries that followed it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutput {
    /// The message's position, from 0.
    pub turn: usize,
    /// The effects, in order (calls included, as requested; nothing was performed).
    pub effects: Vec<Emitted>,
    /// The nodes passed through.
    pub visited: Vec<String>,
    /// Why the turn is incomplete or empty, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<TurnNote>,
}

/// Why a replayed turn is incomplete or empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum TurnNote {
    /// The flow had finished before this message.
    FlowFinished,
    /// The flow made a call the recording does not have; it was not performed and the replay
    /// of this conversation stopped here.
    UnrecordedCall {
        /// The method.
        method: String,
        /// The URL (secrets as references).
        url: String,
    },
    /// The flow queried the knowledge base with a query the recording does not have; the
    /// replay stopped here.
    UnrecordedKb {
        /// The query.
        query: String,
    },
    /// An earlier turn stopped the replay.
    Stopped,
    /// The engine refused the input.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Runs `flow` over `recorded` without side effects: each call is answered by the first unused
/// recorded call with the same method and URL, each knowledge-base query by the first unused
/// recorded one with the same query. Deterministic; never panics.
pub fn replay(flow: &Flow, recorded: &RecordedConversation) -> Transcript {
    let mut calls = recorded.calls.iter().map(Some).collect::<Vec<_>>();
    let mut kb = recorded.kb.iter().map(Some).collect::<Vec<_>>();
    let mut turns = Vec::with_capacity(recorded.turns.len());
    let mut state = None;
    let mut stopped = false;
    for (index, turn) in recorded.turns.iter().enumerate() {
        let ctx = Context {
            now_ms: turn.now_ms.unwrap_or(recorded.context.now_ms),
            ..recorded.context.clone()
        };
        let mut out = TurnOutput {
            turn: index,
            effects: Vec::new(),
            visited: Vec::new(),
            note: None,
        };
        if stopped {
            out.note = Some(TurnNote::Stopped);
            turns.push(out);
            continue;
        }
        let first = match &state {
            None => Ok(Engine::start(flow, &ctx, Some(&turn.message))),
            Some(s) if crate::engine::FlowState::is_finished(s) => {
                out.note = Some(TurnNote::FlowFinished);
                turns.push(out);
                continue;
            }
            Some(s) => Engine::resume(flow, s, &ctx, Input::Message(turn.message.clone())),
        };
        let mut step = match first {
            Ok(step) => step,
            Err(e) => {
                out.note = Some(refused(&e));
                turns.push(out);
                continue;
            }
        };
        // Answer the calls and queries from the recording until the flow waits for the customer.
        loop {
            out.effects.append(&mut step.effects);
            out.visited.append(&mut step.visited);
            let answer = match &step.state.status {
                Status::AwaitingCall { attempt, .. } => {
                    let Some((method, url)) = last_call(&out.effects) else {
                        break;
                    };
                    match take(&mut calls, |c| c.method == method && c.url == url) {
                        Some(call) => Input::CallResult(CallResult {
                            attempt: *attempt,
                            outcome: call.outcome.clone(),
                        }),
                        None => {
                            out.note = Some(TurnNote::UnrecordedCall { method, url });
                            stopped = true;
                            break;
                        }
                    }
                }
                Status::AwaitingKb { .. } => {
                    let query = out.effects.iter().rev().find_map(|e| match &e.effect {
                        Effect::Kb { query } => Some(query.clone()),
                        _ => None,
                    });
                    let query = query.unwrap_or_default();
                    match take(&mut kb, |k| k.query == query) {
                        Some(record) => Input::KbResult {
                            answered: record.answered,
                        },
                        None => {
                            out.note = Some(TurnNote::UnrecordedKb { query });
                            stopped = true;
                            break;
                        }
                    }
                }
                Status::AwaitingMessage { .. } | Status::Finished { .. } => break,
            };
            match Engine::resume(flow, &step.state, &ctx, answer) {
                Ok(next) => {
                    step = Step { ..next };
                }
                Err(e) => {
                    out.note = Some(refused(&e));
                    break;
                }
            }
        }
        state = Some(step.state);
        turns.push(out);
    }
    let outcome = state.as_ref().and_then(|s| match &s.status {
        Status::Finished { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    Transcript {
        conversation_id: recorded.id.clone(),
        flow_id: flow.id().to_owned(),
        flow_version: flow.version(),
        turns,
        outcome,
    }
}

fn refused(e: &EngineError) -> TurnNote {
    TurnNote::Refused { reason: e.to_string() }
}

fn last_call(effects: &[Emitted]) -> Option<(String, String)> {
    effects.iter().rev().find_map(|e| match &e.effect {
        Effect::Call { request, .. } => Some((request.method.clone(), request.url.to_string())),
        _ => None,
    })
}

fn take<'a, T>(records: &mut [Option<&'a T>], matches: impl Fn(&T) -> bool) -> Option<&'a T> {
    records
        .iter_mut()
        .find(|slot| slot.is_some_and(&matches))
        .and_then(Option::take)
}

/// Where two runs over the same conversation differ, at one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The conversation's id.
    pub conversation_id: String,
    /// The turn, from 0.
    pub turn: usize,
    /// The node of the first differing effect in the baseline run (`None`: it had no more).
    pub baseline_node: Option<String>,
    /// The node of the first differing effect in the candidate run.
    pub candidate_node: Option<String>,
    /// The baseline's effects at this turn.
    pub baseline: Vec<Emitted>,
    /// The candidate's effects at this turn.
    pub candidate: Vec<Emitted>,
    /// The baseline's note at this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_note: Option<TurnNote>,
    /// The candidate's note at this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_note: Option<TurnNote>,
}

/// Compares two transcripts of one conversation turn by turn: a turn differs when the effects
/// (compared without the node ids, so renaming a node changes nothing) or the notes differ.
pub fn diff(baseline: &Transcript, candidate: &Transcript) -> Vec<Difference> {
    let turns = baseline.turns.len().max(candidate.turns.len());
    let mut out = Vec::new();
    for turn in 0..turns {
        let a = baseline.turns.get(turn);
        let b = candidate.turns.get(turn);
        let a_effects = a.map(|t| t.effects.as_slice()).unwrap_or_default();
        let b_effects = b.map(|t| t.effects.as_slice()).unwrap_or_default();
        let a_note = a.and_then(|t| t.note.clone());
        let b_note = b.and_then(|t| t.note.clone());
        let first_difference = (0..a_effects.len().max(b_effects.len()))
            .find(|&i| a_effects.get(i).map(|e| &e.effect) != b_effects.get(i).map(|e| &e.effect));
        if first_difference.is_none() && a_note == b_note {
            continue;
        }
        let at = first_difference.unwrap_or(0);
        out.push(Difference {
            conversation_id: candidate.conversation_id.clone(),
            turn,
            baseline_node: a_effects.get(at).map(|e| e.node.clone()),
            candidate_node: b_effects.get(at).map(|e| e.node.clone()),
            baseline: a_effects.to_vec(),
            candidate: b_effects.to_vec(),
            baseline_note: a_note,
            candidate_note: b_note,
        });
    }
    out
}

/// Replays `baseline` and `candidate` (typically the published version and a draft) over each
/// conversation and returns every difference, conversation by conversation.
pub fn compare(baseline: &Flow, candidate: &Flow, conversations: &[RecordedConversation]) -> Vec<Difference> {
    conversations
        .iter()
        .flat_map(|c| diff(&replay(baseline, c), &replay(candidate, c)))
        .collect()
}
