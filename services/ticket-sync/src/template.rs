//! The connectors' request templates: text with `{{variable}}` placeholders, filled from a JSON
//! context and escaped for where the text goes, so a value can never change a request's shape
//! (break out of a JSON string, add a header, leave the path).
//!
//! - `{{ticket.subject}}`: the value as text; a missing value or `null` is empty.
//! - `{{json:ticket.tags}}`: the value as JSON (`null` when missing), for a body.
//!
//! Variables are dot-separated paths into the context; each template is checked against the
//! names it may use when a connector is configured, so a typo is refused then, not at send time.

use serde_json::Value;

/// Where rendered text goes, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// A URL path or query: values are percent-encoded.
    Url,
    /// A header value: values with line breaks or other control characters are refused.
    Header,
    /// A JSON body: values are escaped as the inside of a JSON string; `json:` values are JSON.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var { path: Vec<String>, json: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`; the error says what is wrong and where.
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed '{{{{' at byte {}", source.len() - rest.len() + start))?;
            let inner = after[..end].trim();
            let (json, name) = match inner.strip_prefix("json:") {
                Some(name) => (true, name.trim()),
                None => (false, inner),
            };
            let valid = !name.is_empty()
                && name.split('.').all(|segment| {
                    !segment.is_empty()
                        && segment
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            if !valid {
                return Err(format!("invalid variable {inner:?}"));
            }
            parts.push(Part::Var {
                path: name.split('.').map(str::to_owned).collect(),
                json,
            });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Checks every variable's first segment against `roots` and `json:` against `escape`.
    pub fn check(&self, roots: &[&str], escape: Escape) -> Result<(), String> {
        for part in &self.parts {
            if let Part::Var { path, json } = part {
                let root = path.first().map(String::as_str).unwrap_or_default();
                if !roots.contains(&root) {
                    return Err(format!(
                        "unknown variable {:?} (known: {})",
                        path.join("."),
                        roots.join(", ")
                    ));
                }
                if *json && escape != Escape::Json {
                    return Err(format!("{{{{json:{}}}}} is only allowed in a body", path.join(".")));
                }
            }
        }
        Ok(())
    }

    /// Fills the template from `context`.
    pub fn render(&self, context: &Value, escape: Escape) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var { path, json } => {
                    let value = lookup(context, path);
                    if *json {
                        out.push_str(&value.map_or_else(|| "null".to_owned(), Value::to_string));
                        continue;
                    }
                    let text = value.map(as_text).unwrap_or_default();
                    match escape {
                        Escape::Url => out.push_str(&percent_encode(&text)),
                        Escape::Header => {
                            if text.chars().any(char::is_control) {
                                return Err(format!("{} has control characters", path.join(".")));
                            }
                            out.push_str(&text);
                        }
                        Escape::Json => {
                            let quoted = Value::String(text).to_string();
                            out.push_str(&quoted[1..quoted.len() - 1]);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn lookup<'a>(context: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(context, |value, segment| value.get(segment.as_str()))
        .filter(|v| !v.is_null())
}

/// A JSON value as the text a template inserts: strings as they are, scalars in JSON notation,
/// arrays and objects as JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Checks a JSON pointer (RFC 6901) as configured: empty, or starting with `/`.
pub fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!("{pointer:?} is not a JSON pointer (it must start with '/')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "ticket": {"id": "tkt_1", "subject": "Say \"hi\"\nnow", "tags": ["a", "b"], "n": 3, "none": null},
            "external": {"id": "a/b c"}
        })
    }

    #[test]
    fn json_bodies_escape_values() {
        let t = Template::parse(r#"{"s": "{{ticket.subject}}", "tags": {{json:ticket.tags}}, "n": {{ticket.n}}, "x": "{{ticket.none}}", "m": {{json:ticket.missing}}}"#).unwrap();
        let body = t.render(&context(), Escape::Json).unwrap();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["s"], "Say \"hi\"\nnow");
        assert_eq!(parsed["tags"], json!(["a", "b"]));
        assert_eq!(parsed["n"], 3);
        assert_eq!(parsed["x"], "");
        assert_eq!(parsed["m"], Value::Null);
    }

    #[test]
    fn paths_are_percent_encoded_and_headers_refuse_line_breaks() {
        let t = Template::parse("/tickets/{{external.id}}?q={{ticket.id}}").unwrap();
        assert_eq!(t.render(&context(), Escape::Url).unwrap(), "/tickets/a%2Fb%20c?q=tkt_1");
        let h = Template::parse("{{ticket.subject}}").unwrap();
        assert!(h.render(&context(), Escape::Header).is_err());
    }

    #[test]
    fn mistakes_are_named() {
        assert!(Template::parse("{{ticket.subject").unwrap_err().contains("unclosed"));
        assert!(Template::parse("{{}}").unwrap_err().contains("invalid variable"));
        assert!(Template::parse("{{a..b}}").is_err());
        let t = Template::parse("{{tikcet.subject}}").unwrap();
        assert!(
            t.check(&["ticket"], Escape::Json)
                .unwrap_err()
                .contains("tikcet.subject")
        );
        let t = Template::parse("/{{json:ticket.tags}}").unwrap();
        assert!(t.check(&["ticket"], Escape::Url).is_err());
        assert!(check_pointer("ticket/id").is_err());
        assert!(check_pointer("/ticket/id").is_ok());
    }
}
