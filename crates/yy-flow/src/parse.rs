//! JSON or YAML text to a [`FlowSpec`], with shape errors located by node and field path.
//!
//! Both formats are read into one JSON value first (refusing duplicate keys, which a plain
//! `serde_json::Value` would silently resolve to the last), then the envelope and each node are
//! read on their own, so one node's mistake does not hide another's.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use crate::error::{FlowError, FlowErrorKind, clip, index, join};
use crate::spec::{FlowSpec, NodeSpec, Triggers};
use crate::{MAX_DOCUMENT_BYTES, MAX_NODES};

/// A JSON value read strictly: duplicate keys are refused; keys that are numbers or booleans
/// (YAML allows them: `404: not_found`) become their text.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(Key(key)) = access.next_key()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_str<E>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_i64<E>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_bool<E>(self, v: bool) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        deserializer.deserialize_any(KeyVisitor).map(Key)
    }
}

fn too_large(len: usize) -> Option<FlowError> {
    (len > MAX_DOCUMENT_BYTES).then(|| {
        FlowError::whole(
            "",
            FlowErrorKind::TooLarge,
            format!("the flow is {len} bytes; at most {MAX_DOCUMENT_BYTES} are allowed"),
        )
    })
}

fn path_of(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index: i } => out = index(&out, *i),
            Segment::Map { key } => out = join(&out, key),
            Segment::Enum { variant } => out = join(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

/// JSON text to a value.
pub(crate) fn json_value(text: &str) -> Result<Value, FlowError> {
    if let Some(e) = too_large(text.len()) {
        return Err(e);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize::<_, Strict>(&mut de).map_err(|e| {
        let path = path_of(e.path());
        let inner = e.into_inner();
        let kind = if inner.is_syntax() || inner.is_eof() {
            FlowErrorKind::Syntax
        } else {
            FlowErrorKind::Shape
        };
        FlowError::whole(path, kind, format!("invalid JSON: {inner}"))
    })?;
    de.end()
        .map_err(|e| FlowError::whole("", FlowErrorKind::Syntax, format!("invalid JSON: {e}")))?;
    Ok(value.0)
}

/// YAML text to a value.
pub(crate) fn yaml_value(text: &str) -> Result<Value, FlowError> {
    if let Some(e) = too_large(text.len()) {
        return Err(e);
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Strict>(de)
        .map(|s| s.0)
        .map_err(|e| {
            let path = path_of(e.path());
            FlowError::whole(path, FlowErrorKind::Syntax, format!("invalid YAML: {}", e.into_inner()))
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    id: String,
    version: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    triggers: Triggers,
    start: String,
    nodes: Vec<Value>,
}

/// A document whose envelope could be read; nodes that could not be read are left out, with
/// their mistakes in `errors`.
pub(crate) struct Parsed {
    pub(crate) spec: FlowSpec,
    /// The position in `nodes` of each node in `spec.nodes`.
    pub(crate) positions: Vec<usize>,
    /// The ids of the nodes that could not be read: references to them are not reported as
    /// unknown, since the node's own mistake is.
    pub(crate) unreadable: Vec<String>,
    pub(crate) errors: Vec<FlowError>,
}

const NODE_TYPES: &str = "say, ask, branch, call, kb, handoff, ticket, set, end";

pub(crate) fn spec_from_value(value: Value) -> Result<Parsed, Vec<FlowError>> {
    if !value.is_object() {
        return Err(vec![FlowError::whole(
            "",
            FlowErrorKind::Shape,
            "a flow must be an object",
        )]);
    }
    if value.get("triggers").is_some_and(Value::is_array) {
        return Err(vec![FlowError::whole(
            "triggers",
            FlowErrorKind::Shape,
            "expected an object, not a list",
        )]);
    }
    let envelope: Envelope = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = path_of(e.path());
        vec![FlowError::whole(path, FlowErrorKind::Shape, e.into_inner().to_string())]
    })?;
    if envelope.nodes.len() > MAX_NODES {
        return Err(vec![FlowError::whole(
            "nodes",
            FlowErrorKind::TooLarge,
            format!("{} nodes; at most {MAX_NODES} are allowed", envelope.nodes.len()),
        )]);
    }
    let mut errors = Vec::new();
    let mut nodes = Vec::with_capacity(envelope.nodes.len());
    let mut positions = Vec::with_capacity(envelope.nodes.len());
    let mut unreadable = Vec::new();
    for (i, raw) in envelope.nodes.into_iter().enumerate() {
        let id = raw.get("id").and_then(Value::as_str).map(|s| clip(s, 80));
        if let Some(id) = raw.get("id").and_then(Value::as_str) {
            unreadable.push(id.to_owned());
        }
        let fail =
            |path: &str, message: String| FlowError::in_node(i, id.as_deref(), path, FlowErrorKind::Shape, message);
        let Value::Object(mut map) = raw else {
            errors.push(fail("", "a node must be an object".to_owned()));
            continue;
        };
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => {
                errors.push(fail("type", format!("must be one of {NODE_TYPES}")));
                continue;
            }
            None => {
                errors.push(fail("type", format!("missing; one of {NODE_TYPES}")));
                continue;
            }
        };
        if let Some(path) = array_for_object(&map) {
            errors.push(fail(&path, "expected an object, not a list".to_owned()));
            continue;
        }
        let body = Value::Object(map);
        let read = match kind.as_str() {
            "say" => node(body, NodeSpec::Say),
            "ask" => node(body, NodeSpec::Ask),
            "branch" => node(body, NodeSpec::Branch),
            "call" => node(body, NodeSpec::Call),
            "kb" => node(body, NodeSpec::Kb),
            "handoff" => node(body, NodeSpec::Handoff),
            "ticket" => node(body, NodeSpec::Ticket),
            "set" => node(body, NodeSpec::Set),
            "end" => node(body, NodeSpec::End),
            other => Err((
                "type".to_owned(),
                format!("unknown node type {:?}; one of {NODE_TYPES}", clip(other, 40)),
            )),
        };
        match read {
            Ok(spec) => {
                if unreadable.last().is_some_and(|last| last == spec.id()) {
                    unreadable.pop();
                }
                nodes.push(spec);
                positions.push(i);
            }
            Err((path, message)) => errors.push(fail(&path, message)),
        }
    }
    Ok(Parsed {
        spec: FlowSpec {
            id: envelope.id,
            version: envelope.version,
            name: envelope.name,
            description: envelope.description,
            triggers: envelope.triggers,
            start: envelope.start,
            nodes,
        },
        positions,
        unreadable,
        errors,
    })
}

/// serde reads a struct from a list too, by position (`"card": ["title"]`); the format only has
/// objects there, so such a list is refused before serde reads it. Returns the path of the
/// first one.
fn items(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn array_for_object(node: &Map<String, Value>) -> Option<String> {
    let list = |v: Option<&Value>| v.is_some_and(Value::is_array);
    for field in ["card", "request"] {
        if list(node.get(field)) {
            return Some(field.to_owned());
        }
    }
    let card = node.get("card");
    for (i, button) in items(card.and_then(|c| c.get("buttons"))).iter().enumerate() {
        if button.is_array() {
            return Some(format!("card.buttons[{i}]"));
        }
    }
    for (i, case) in items(node.get("cases")).iter().enumerate() {
        if case.is_array() {
            return Some(format!("cases[{i}]"));
        }
    }
    let validate = node.get("validate");
    for rule in ["number", "date", "text"] {
        if list(validate.and_then(|v| v.get(rule))) {
            return Some(format!("validate.{rule}"));
        }
    }
    for (i, option) in items(validate.and_then(|v| v.get("choice"))).iter().enumerate() {
        if option.is_array() {
            return Some(format!("validate.choice[{i}]"));
        }
    }
    None
}

fn node<T: serde::de::DeserializeOwned>(body: Value, wrap: fn(T) -> NodeSpec) -> Result<NodeSpec, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(body)
        .map(wrap)
        .map_err(|e| (path_of(e.path()), e.into_inner().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_in_both_formats() {
        let e = json_value(r#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert!(e.message.contains("duplicate key"), "{e}");
        let e = yaml_value("a:\n  b: 1\n  b: 2\n").unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn yaml_number_keys_become_text() {
        let v = yaml_value("on_status:\n  404: missing\n").unwrap();
        assert_eq!(v["on_status"]["404"], "missing");
    }

    #[test]
    fn not_json_is_a_syntax_error() {
        let e = json_value("{nope").unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::Syntax);
        let e = json_value("{} trailing").unwrap_err();
        assert_eq!(e.kind, FlowErrorKind::Syntax);
    }
}
