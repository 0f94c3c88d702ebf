//! Why a flow was refused, and what the engine could not do.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of mistake a [`FlowError`] reports; stable, for programs (the message is for
/// people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FlowErrorKind {
    /// The text is not JSON or YAML at all.
    Syntax,
    /// The wrong shape: a missing or unknown field, a wrong type, an unknown node type.
    Shape,
    /// A value out of range or badly formed (an id, a number, a regular expression, a URL).
    Invalid,
    /// An id that must be unique appears twice.
    Duplicate,
    /// A reference (`start`, `next`, a branch target, `on_*`) to a node that does not exist.
    UnknownNode,
    /// A cycle of nodes none of which waits for the customer.
    NonWaitingLoop,
    /// A template that does not parse or names something unknown.
    Template,
    /// A slot read somewhere that no node ever sets.
    UnknownSlot,
    /// A condition that does not parse.
    Condition,
    /// Too large: the text, the number of nodes, a list.
    TooLarge,
    /// (Warning) a slot read where some path to it has not set it: it reads as empty there.
    MaybeUnsetSlot,
    /// (Warning) a node no path from `start` reaches.
    Unreachable,
}

/// How serious a [`FlowError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The flow is refused.
    Error,
    /// The flow is accepted; the author should look.
    Warning,
}

/// One mistake in a flow, located by node and field path.
///
/// Displayed as `nodes[2] "ask_order": validate.number.min: must be below max`; a mistake outside
/// any node reads `start: no node "begin"`. The path is relative to the node (or to the document
/// when `node_index` is `None`), written with `.field` and `[index]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowError {
    /// The node's position in `nodes`, from 0; `None` for the document as a whole.
    pub node_index: Option<usize>,
    /// The node's id as written, when it had one (cut to 80 characters).
    pub node_id: Option<String>,
    /// The field, such as `next` or `request.headers.Authorization`.
    pub path: String,
    /// The kind of mistake.
    pub kind: FlowErrorKind,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, for people.
    pub message: String,
}

impl FlowError {
    pub(crate) fn whole(path: impl Into<String>, kind: FlowErrorKind, message: impl Into<String>) -> Self {
        FlowError {
            node_index: None,
            node_id: None,
            path: path.into(),
            kind,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub(crate) fn in_node(
        index: usize,
        id: Option<&str>,
        path: impl Into<String>,
        kind: FlowErrorKind,
        message: impl Into<String>,
    ) -> Self {
        FlowError {
            node_index: Some(index),
            node_id: id.map(|n| clip(n, 80)),
            path: path.into(),
            kind,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(index) = self.node_index {
            write!(f, "nodes[{index}]")?;
            if let Some(id) = &self.node_id {
                write!(f, " \"{}\"", id.escape_debug())?;
            }
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FlowError {}

/// Why [`crate::Engine::resume`] refused an input. Nothing changed: the state is as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EngineError {
    /// The state was made by another flow or another version of it.
    WrongFlow {
        /// The flow id and version of the state.
        state: (String, u64),
        /// The flow id and version given.
        flow: (String, u64),
    },
    /// The flow has finished; start it again to run it again.
    Finished,
    /// The input is not what the flow waits for (a message while a call is pending, a call
    /// result for another node or attempt).
    Unexpected {
        /// What the flow waits for.
        waiting_for: String,
        /// What came.
        got: String,
    },
    /// The state names a node the flow does not have (it was tampered with).
    CorruptState(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::WrongFlow { state, flow } => write!(
                f,
                "the state belongs to flow {:?} version {}, not {:?} version {}",
                state.0, state.1, flow.0, flow.1
            ),
            EngineError::Finished => f.write_str("the flow has finished"),
            EngineError::Unexpected { waiting_for, got } => {
                write!(f, "the flow waits for {waiting_for}, not {got}")
            }
            EngineError::CorruptState(why) => write!(f, "corrupt flow state: {why}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
    }
}

/// Appends a field to a path: `.word`, or `["any key"]` for keys that are not plain words.
pub(crate) fn join(path: &str, key: &str) -> String {
    let mut joined = path.to_owned();
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !joined.is_empty() {
            joined.push('.');
        }
        joined.push_str(key);
    } else {
        joined.push_str("[\"");
        joined.extend(key.escape_debug());
        joined.push_str("\"]");
    }
    joined
}

/// Appends a list index to a path.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = FlowError::in_node(
            2,
            Some("ask_order"),
            "next",
            FlowErrorKind::UnknownNode,
            "no node \"x\"",
        );
        assert_eq!(e.to_string(), r#"nodes[2] "ask_order": next: no node "x""#);
        let e = FlowError::whole("start", FlowErrorKind::UnknownNode, "no node \"b\"").warning();
        assert_eq!(e.to_string(), r#"warning: start: no node "b""#);
        assert_eq!(join("request.headers", "X-Key"), "request.headers.X-Key");
        assert_eq!(join("save", "a b"), r#"save["a b"]"#);
        assert_eq!(index("cases", 1), "cases[1]");
        assert_eq!(clip("订单订单", 2), "订单…");
    }
}
