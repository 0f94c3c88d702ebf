//! JSON text to [`RuleSetSpec`], with shape errors located by rule and field path.
//!
//! The document is read in two steps so that one rule's mistake does not hide another's: first
//! the envelope (`version` and the raw text of each rule), then each rule on its own. Every rule
//! is read from its own text (not through a `serde_json::Value`), so duplicate keys are refused
//! as they would be for the whole document.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use serde_path_to_error::Segment;

use crate::error::{RuleError, RuleErrorKind, join, push_key};
use crate::spec::RuleSpec;
use crate::{MAX_JSON_BYTES, MAX_RULES};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "RuleSet")]
struct Envelope<'a> {
    version: u64,
    #[serde(borrow)]
    rules: Vec<&'a RawValue>,
}

/// A document whose envelope could be read; rules that could not be read are `None`, with their
/// mistakes in `errors`, so the readable ones can still be validated.
pub(crate) struct Parsed {
    pub(crate) version: u64,
    pub(crate) rules: Vec<Option<RuleSpec>>,
    pub(crate) errors: Vec<RuleError>,
}

pub(crate) fn parse_spec(json: &str) -> Result<Parsed, RuleError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(RuleError::whole(
            "",
            RuleErrorKind::TooLarge,
            format!(
                "the rule set is {} bytes; at most {MAX_JSON_BYTES} are allowed",
                json.len()
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let envelope: Envelope<'_> = match serde_path_to_error::deserialize(&mut de) {
        Ok(envelope) => envelope,
        Err(e) => return Err(document_error(e)),
    };
    if let Err(e) = de.end() {
        return Err(RuleError::whole(
            "",
            RuleErrorKind::Syntax,
            format!("invalid JSON: {e}"),
        ));
    }
    if !json.trim_start().starts_with('{') {
        return Err(RuleError::whole("", RuleErrorKind::Shape, "expected an object"));
    }
    if envelope.rules.len() > MAX_RULES {
        return Err(RuleError::whole(
            "rules",
            RuleErrorKind::TooLarge,
            format!("{} rules; at most {MAX_RULES} are allowed", envelope.rules.len()),
        ));
    }

    let mut rules = Vec::with_capacity(envelope.rules.len());
    let mut errors = Vec::new();
    for (index, raw) in envelope.rules.iter().enumerate() {
        // The raw text is valid JSON: the envelope was read through it.
        let value = serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
        let name = value.get("name").and_then(Value::as_str);
        if let Some(path) = array_for_object(&value) {
            rules.push(None);
            errors.push(RuleError::in_rule(
                index,
                name,
                path,
                RuleErrorKind::Shape,
                "expected an object",
            ));
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        match serde_path_to_error::deserialize::<_, RuleSpec>(&mut de) {
            Ok(rule) => rules.push(Some(rule)),
            Err(e) => {
                rules.push(None);
                let (path, message) = located(&e);
                errors.push(RuleError::in_rule(index, name, path, RuleErrorKind::Shape, message));
            }
        }
    }
    Ok(Parsed {
        version: envelope.version,
        rules,
        errors,
    })
}

/// serde reads a struct from an array too, by position (`"then": ["bot"]`); the format only has
/// objects, so an array where an object belongs is refused before serde reads it. Returns the
/// path of the first such array.
fn array_for_object(rule: &Value) -> Option<String> {
    let is_array = |value: Option<&Value>| value.is_some_and(Value::is_array);
    if rule.is_array() {
        return Some(String::new());
    }
    if let Some(when) = rule.get("when") {
        if when.is_array() {
            return Some("when".to_owned());
        }
        for key in [
            "intent",
            "sentiment",
            "contact_attributes",
            "business_hours",
            "waiting_seconds",
            "repeated_low_confidence",
        ] {
            if is_array(when.get(key)) {
                return Some(format!("when.{key}"));
            }
        }
        if let Some(Value::Object(tests)) = when.get("contact_attributes")
            && let Some((key, _)) = tests.iter().find(|(_, test)| test.is_array())
        {
            return Some(join("when.contact_attributes", key));
        }
        if is_array(when.get("business_hours").and_then(|hours| hours.get("schedule"))) {
            return Some("when.business_hours.schedule".to_owned());
        }
    }
    if let Some(then) = rule.get("then") {
        if then.is_array() {
            return Some("then".to_owned());
        }
        if let Some(Value::Array(skills)) = then.get("skills")
            && let Some(i) = skills.iter().position(Value::is_array)
        {
            return Some(format!("then.skills[{i}]"));
        }
    }
    None
}

fn document_error(e: serde_path_to_error::Error<serde_json::Error>) -> RuleError {
    if e.inner().classify() == serde_json::error::Category::Data {
        let (path, message) = located(&e);
        RuleError::whole(path, RuleErrorKind::Shape, message)
    } else {
        // Syntax errors keep serde_json's line and column: they are positions in the whole text.
        RuleError::whole("", RuleErrorKind::Syntax, format!("invalid JSON: {}", e.inner()))
    }
}

/// The path and a message in the product's words for a shape error.
fn located(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = String::new();
    for segment in e.path() {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(path, "[{index}]");
            }
            Segment::Map { key } => push_key(&mut path, key),
            Segment::Enum { variant } => push_key(&mut path, variant),
            Segment::Unknown => {}
        }
    }
    let inner = e.inner();
    let mut message = inner.to_string();
    if inner.line() != 0 {
        // Positions inside one rule's text would mislead: the path says where.
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        if let Some(stripped) = message.strip_suffix(&position) {
            message = stripped.to_owned();
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        push_key(&mut path, field);
        return (path, "is required".to_owned());
    }
    if let Some((field, rest)) = message.strip_prefix("unknown field `").and_then(|r| r.split_once('`')) {
        let message = match rest.strip_prefix(", expected ") {
            Some(expected) => format!("unknown field; expected {expected}"),
            None => "unknown field".to_owned(),
        };
        // The path usually ends at the unknown key already.
        let at_field = matches!(e.path().iter().next_back(), Some(Segment::Map { key }) if key == field);
        if !at_field {
            push_key(&mut path, field);
        }
        return (path, message);
    }
    if let Some(field) = message
        .strip_prefix("duplicate field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        push_key(&mut path, field);
        return (path, "appears twice".to_owned());
    }
    (path, plain_words(&message))
}

/// Replaces Rust type names in serde's messages with what a tenant writes.
fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 7] = [
        ("expected u64", "expected a whole number from 0"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected i32", "expected a whole number"),
        ("expected f32", "expected a number"),
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected an array"),
        ("expected a borrowed string", "expected a string"),
    ];
    let mut message = message.to_owned();
    for (from, to) in WORDS {
        if message.contains(from) {
            message = message.replace(from, to);
        }
    }
    // "expected struct Conditions" and the like: every other struct is a JSON object.
    if let Some(at) = message.find("expected struct ") {
        message.truncate(at);
        message.push_str("expected an object");
    }
    message
}
