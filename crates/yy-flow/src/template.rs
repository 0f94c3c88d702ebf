//! Templates: text with `{{namespace.path}}` placeholders.
//!
//! Parsed once when the flow is validated; rendering never fails (an unknown value renders as
//! nothing) and never panics.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most placeholders one template may hold.
const MAX_PLACEHOLDERS: usize = 50;
/// The deepest path a placeholder may name.
const MAX_SEGMENTS: usize = 8;

/// What a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Ref {
    /// `slot.NAME`.
    Slot(String),
    /// `contact.name`, `contact.id`.
    ContactField(String),
    /// `contact.attributes.KEY`.
    ContactAttribute(String),
    /// `call.status` (empty path) or `call.body.…` (the path below the body).
    Call(CallPath),
    /// `secrets.NAME`.
    Secret(String),
    /// `conversation.id`, `conversation.channel`.
    Conversation(String),
    /// `message.text`.
    MessageText,
}

/// A value of the last call's response: its status, or a path into its JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum CallPath {
    Status,
    Body(Vec<String>),
}

impl CallPath {
    /// Parses `status`, `body` or `body.a.0.b` (numbers index arrays).
    pub(crate) fn parse(path: &str) -> Result<CallPath, String> {
        let segments = path.split('.').collect::<Vec<_>>();
        match segments.as_slice() {
            ["status"] => Ok(CallPath::Status),
            ["body", rest @ ..] => {
                if rest.len() > MAX_SEGMENTS {
                    return Err(format!("at most {MAX_SEGMENTS} levels below body"));
                }
                for s in rest {
                    check_segment(s)?;
                }
                Ok(CallPath::Body(rest.iter().map(|s| (*s).to_owned()).collect()))
            }
            _ => Err(format!("{path:?} is not `status`, `body` or `body.<path>`")),
        }
    }

    /// The value at this path of a response.
    pub(crate) fn extract(&self, status: u16, body: &Value) -> Option<Value> {
        match self {
            CallPath::Status => Some(Value::from(status)),
            CallPath::Body(path) => {
                let mut at = body;
                for segment in path {
                    at = match at {
                        Value::Object(map) => map.get(segment)?,
                        Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(at.clone())
            }
        }
    }

    /// The key under which the state keeps this value.
    pub(crate) fn key(&self) -> String {
        match self {
            CallPath::Status => "status".to_owned(),
            CallPath::Body(path) if path.is_empty() => "body".to_owned(),
            CallPath::Body(path) => format!("body.{}", path.join(".")),
        }
    }
}

fn check_segment(segment: &str) -> Result<(), String> {
    let ok = !segment.is_empty()
        && segment.chars().count() <= 64
        && segment.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{segment:?} is not a name: 1 to 64 letters, digits, '_' or '-'"
        ))
    }
}

impl Ref {
    fn parse(inner: &str) -> Result<Ref, String> {
        let inner = inner.trim();
        if inner.is_empty() {
            return Err("empty placeholder `{{}}`".to_owned());
        }
        let (namespace, rest) = inner.split_once('.').unwrap_or((inner, ""));
        let one = |what: &str| -> Result<String, String> {
            if rest.is_empty() {
                return Err(format!("`{namespace}` needs a {what}: `{{{{{namespace}.<{what}>}}}}`"));
            }
            if rest.contains('.') {
                return Err(format!("`{namespace}.` takes one {what}, not a path: {rest:?}"));
            }
            check_segment(rest)?;
            Ok(rest.to_owned())
        };
        match namespace {
            "slot" => one("name").map(Ref::Slot),
            "secrets" => one("name").map(Ref::Secret),
            "contact" => match rest.split_once('.') {
                Some(("attributes", key)) => {
                    check_segment(key)?;
                    Ok(Ref::ContactAttribute(key.to_owned()))
                }
                None if rest == "name" || rest == "id" => Ok(Ref::ContactField(rest.to_owned())),
                _ => Err(format!(
                    "`contact.{rest}` is unknown: use contact.name, contact.id or contact.attributes.<key>"
                )),
            },
            "call" => CallPath::parse(rest).map(Ref::Call),
            "conversation" => match rest {
                "id" | "channel" => Ok(Ref::Conversation(rest.to_owned())),
                _ => Err(format!(
                    "`conversation.{rest}` is unknown: use conversation.id or conversation.channel"
                )),
            },
            "message" => match rest {
                "text" => Ok(Ref::MessageText),
                _ => Err(format!("`message.{rest}` is unknown: use message.text")),
            },
            other => Err(format!(
                "unknown namespace {other:?}: use slot, contact, call, secrets, conversation or message"
            )),
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Slot(s) => write!(f, "slot.{s}"),
            Ref::ContactField(s) => write!(f, "contact.{s}"),
            Ref::ContactAttribute(s) => write!(f, "contact.attributes.{s}"),
            Ref::Call(p) => write!(f, "call.{}", p.key()),
            Ref::Secret(s) => write!(f, "secrets.{s}"),
            Ref::Conversation(s) => write!(f, "conversation.{s}"),
            Ref::MessageText => f.write_str("message.text"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Ref(Ref),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// Where rendered values are going, which decides how they are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Text for people: as is.
    None,
    /// Inside a URL: percent-encoded, so a customer's answer cannot change the path or query.
    Url,
    /// A header value: line breaks removed, so a value cannot add headers.
    Header,
}

/// Looks up the values placeholders name.
pub(crate) trait Scope {
    fn value(&self, r: &Ref) -> Option<Value>;
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut placeholders = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "`{{{{` at byte {} is never closed with `}}}}`",
                    text.len() - rest.len() + open
                ));
            };
            let inner = &after[..close];
            if inner.contains("{{") {
                return Err(format!(
                    "`{{{{` inside a placeholder: {:?}",
                    crate::error::clip(inner, 40)
                ));
            }
            placeholders += 1;
            if placeholders > MAX_PLACEHOLDERS {
                return Err(format!("at most {MAX_PLACEHOLDERS} placeholders"));
            }
            let r = Ref::parse(inner).map_err(|e| format!("{{{{{}}}}}: {e}", crate::error::clip(inner.trim(), 40)))?;
            parts.push(Part::Ref(r));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Everything the placeholders name.
    pub(crate) fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Literal(_) => None,
        })
    }

    /// The text with every placeholder replaced; secrets render as nothing (they are only
    /// allowed where [`Template::render_secret`] is used).
    pub(crate) fn render(&self, scope: &dyn Scope, escape: Escape) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Ref(Ref::Secret(_)) => {}
                Part::Ref(r) => push_value(&mut out, scope.value(r).as_ref(), escape),
            }
        }
        out
    }

    /// Like [`Template::render`], keeping secrets as references for the service to resolve.
    pub(crate) fn render_secret(&self, scope: &dyn Scope, escape: Escape) -> SecretText {
        let mut parts: Vec<SecretPart> = Vec::new();
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Ref(Ref::Secret(name)) => {
                    if !text.is_empty() {
                        parts.push(SecretPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(SecretPart::Secret(name.clone()));
                }
                Part::Ref(r) => push_value(&mut text, scope.value(r).as_ref(), escape),
            }
        }
        if !text.is_empty() {
            parts.push(SecretPart::Text(text));
        }
        SecretText { parts }
    }

    /// Whether the template starts with a literal (not a placeholder).
    pub(crate) fn literal_prefix(&self) -> Option<&str> {
        match self.parts.first() {
            Some(Part::Literal(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether the template starts with a secret.
    pub(crate) fn starts_with_secret(&self) -> bool {
        matches!(self.parts.first(), Some(Part::Ref(Ref::Secret(_))))
    }
}

fn push_value(out: &mut String, value: Option<&Value>, escape: Escape) {
    let text = match value {
        None | Some(Value::Null) => return,
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match escape {
        Escape::None => out.push_str(&text),
        Escape::Header => out.extend(text.chars().filter(|c| !c.is_control())),
        Escape::Url => {
            for byte in text.bytes() {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
}

/// A rendered string that may still contain secrets, by reference: the engine never sees a
/// secret's value, the service resolves them just before it sends the request.
///
/// Serialises as a list of parts: `[{"text": "https://x/"}, {"secret": "api_key"}]`. Displays
/// with each secret as `{{secrets.NAME}}`, which is also how replay compares requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText {
    /// The parts in order.
    pub parts: Vec<SecretPart>,
}

/// A part of a [`SecretText`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretPart {
    /// Text as is (already escaped for where it goes).
    Text(String),
    /// The name of a secret the service holds for the tenant.
    Secret(String),
}

impl SecretText {
    /// A text without secrets.
    pub fn plain(text: impl Into<String>) -> Self {
        SecretText {
            parts: vec![SecretPart::Text(text.into())],
        }
    }

    /// The names of the secrets, in order of appearance.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            SecretPart::Secret(name) => Some(name.as_str()),
            SecretPart::Text(_) => None,
        })
    }

    /// The text with every secret replaced by `lookup(name)`; fails with the name of the first
    /// secret `lookup` does not know. A secret's value is inserted as is: it is the business's
    /// own configuration (a base URL, a key), not the customer's input.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                SecretPart::Text(text) => out.push_str(text),
                SecretPart::Secret(name) => out.push_str(&lookup(name).ok_or_else(|| name.clone())?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                SecretPart::Text(text) => f.write_str(text)?,
                SecretPart::Secret(name) => write!(f, "{{{{secrets.{name}}}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Scope for Fixed {
        fn value(&self, r: &Ref) -> Option<Value> {
            match r {
                Ref::Slot(s) if s == "order" => Some(Value::from("A-1/2 3")),
                Ref::Slot(s) if s == "n" => Some(Value::from(3)),
                Ref::ContactField(f) if f == "name" => Some(Value::from("王芳")),
                Ref::Call(CallPath::Body(p)) if p == &["status".to_owned()] => Some(Value::from("shipped")),
                _ => None,
            }
        }
    }

    #[test]
    fn given_placeholders_when_rendered_then_values_replace_them() {
        let t = Template::parse("{{contact.name}}，订单 {{ slot.order }} 状态 {{call.body.status}}{{slot.none}}。")
            .unwrap();
        assert_eq!(t.render(&Fixed, Escape::None), "王芳，订单 A-1/2 3 状态 shipped。");
        assert_eq!(t.refs().count(), 4);
        let n = Template::parse("n={{slot.n}}").unwrap();
        assert_eq!(n.render(&Fixed, Escape::None), "n=3");
    }

    #[test]
    fn given_url_when_rendered_then_customer_values_are_percent_encoded_and_secrets_kept() {
        let t = Template::parse("{{secrets.base}}/orders/{{slot.order}}?x=1").unwrap();
        let s = t.render_secret(&Fixed, Escape::Url);
        assert_eq!(s.to_string(), "{{secrets.base}}/orders/A-1%2F2%203?x=1");
        assert_eq!(s.secrets().collect::<Vec<_>>(), ["base"]);
        assert_eq!(
            s.resolve(|n| (n == "base").then(|| "https://api.example".to_owned()))
                .unwrap(),
            "https://api.example/orders/A-1%2F2%203?x=1"
        );
        assert_eq!(s.resolve(|_| None), Err("base".to_owned()));
        assert!(t.starts_with_secret());
    }

    #[test]
    fn given_bad_templates_when_parsed_then_each_is_refused_with_a_reason() {
        for (text, needle) in [
            ("hello {{slot.x", "never closed"),
            ("{{}}", "empty placeholder"),
            ("{{foo.bar}}", "unknown namespace"),
            ("{{slot}}", "needs a name"),
            ("{{slot.a.b}}", "one name"),
            ("{{contact.age}}", "contact.age"),
            ("{{call.headers}}", "not `status`"),
            ("{{slot.a b}}", "not a name"),
            ("{{ {{slot.a}} }}", "inside a placeholder"),
        ] {
            let e = Template::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(Template::parse("plain }} text {").is_ok());
    }

    #[test]
    fn given_a_header_value_when_rendered_then_line_breaks_are_dropped() {
        struct Evil;
        impl Scope for Evil {
            fn value(&self, _: &Ref) -> Option<Value> {
                Some(Value::from("a\r\nX-Injected: 1"))
            }
        }
        let t = Template::parse("Bearer {{slot.x}}").unwrap();
        assert_eq!(t.render(&Evil, Escape::Header), "Bearer aX-Injected: 1");
    }

    #[test]
    fn call_paths_extract_from_bodies() {
        let body = serde_json::json!({"items": [{"name": "伞"}], "status": "shipped"});
        assert_eq!(
            CallPath::parse("body.items.0.name").unwrap().extract(200, &body),
            Some(Value::from("伞"))
        );
        assert_eq!(
            CallPath::parse("status").unwrap().extract(404, &body),
            Some(Value::from(404))
        );
        assert_eq!(CallPath::parse("body.items.x").unwrap().extract(200, &body), None);
        assert!(CallPath::parse("headers.x").is_err());
    }
}
