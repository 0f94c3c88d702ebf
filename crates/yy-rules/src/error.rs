//! Why a rule set was refused.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of mistake a [`RuleError`] reports; stable, for programs (the message is for
/// people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleErrorKind {
    /// The text is not JSON at all.
    Syntax,
    /// Valid JSON of the wrong shape: a missing or unknown field, a wrong type, an unknown enum
    /// value.
    Shape,
    /// A value out of range or badly formed (a name, a bound, a time range).
    Invalid,
    /// A value that must be unique appears twice (a rule name, a list entry).
    Duplicate,
    /// A rule that can never match, because an earlier rule always matches first.
    Unreachable,
    /// There is no default: the rule set is empty or its last rule has conditions.
    MissingDefault,
    /// A queue that is not among the known queues.
    UnknownQueue,
    /// Too large: the text, the number of rules, or a list.
    TooLarge,
}

/// One mistake in a rule set, located by rule and field path.
///
/// Displayed as `rules[2] "vip-angry": when.sentiment.below: must be between -1 and 1`; a
/// mistake outside any rule reads `version: must be at least 1`. The path is relative to the
/// rule (or to the whole set when `rule_index` is `None`) and uses `.field` and `[index]`
/// (`["key"]` for a map key that is not a plain word); it is empty when the mistake is about the
/// rule as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleError {
    /// The rule's position in `rules`, from 0; `None` for the set as a whole.
    pub rule_index: Option<usize>,
    /// The rule's name as written, when it had one (cut to 80 characters).
    pub rule_name: Option<String>,
    /// The field, such as `when.sentiment.below` or `then.skills[0].min_level`.
    pub path: String,
    /// The kind of mistake.
    pub kind: RuleErrorKind,
    /// What is wrong, for people.
    pub message: String,
}

impl RuleError {
    pub(crate) fn whole(path: impl Into<String>, kind: RuleErrorKind, message: impl Into<String>) -> Self {
        RuleError {
            rule_index: None,
            rule_name: None,
            path: path.into(),
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn in_rule(
        index: usize,
        name: Option<&str>,
        path: impl Into<String>,
        kind: RuleErrorKind,
        message: impl Into<String>,
    ) -> Self {
        RuleError {
            rule_index: Some(index),
            rule_name: name.map(|n| clip(n, 80)),
            path: path.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.rule_index {
            write!(f, "rules[{index}]")?;
            if let Some(name) = &self.rule_name {
                write!(f, " \"{}\"", name.escape_debug())?;
            }
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
    }
}

/// Appends a map key or field to a path: `.word`, or `["any key"]` for keys that are not plain
/// words, so every path reads unambiguously.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str("[\"");
        path.extend(key.escape_debug());
        path.push_str("\"]");
    }
}

/// `path` with `key` appended.
pub(crate) fn join(path: &str, key: &str) -> String {
    let mut joined = path.to_owned();
    push_key(&mut joined, key);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = RuleError::in_rule(
            2,
            Some("vip-angry"),
            "when.sentiment.below",
            RuleErrorKind::Invalid,
            "must be between -1 and 1",
        );
        assert_eq!(
            e.to_string(),
            r#"rules[2] "vip-angry": when.sentiment.below: must be between -1 and 1"#
        );
        let e = RuleError::in_rule(0, None, "", RuleErrorKind::Shape, "must be an object");
        assert_eq!(e.to_string(), "rules[0]: must be an object");
        let e = RuleError::whole("version", RuleErrorKind::Invalid, "must be at least 1");
        assert_eq!(e.to_string(), "version: must be at least 1");
        let e = RuleError::in_rule(1, Some("a\"b\n"), "", RuleErrorKind::Invalid, "x");
        assert_eq!(e.to_string(), r#"rules[1] "a\"b\n": x"#);
    }

    #[test]
    fn paths() {
        assert_eq!(join("when.contact_attributes", "tier"), "when.contact_attributes.tier");
        assert_eq!(
            join("when.contact_attributes", "vip tier"),
            r#"when.contact_attributes["vip tier"]"#
        );
        assert_eq!(join("", "name"), "name");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("退款退款", 4), "退款退款");
    }
}
