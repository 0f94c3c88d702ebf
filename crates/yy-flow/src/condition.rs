//! The condition language of `branch` cases.

use serde_json::{Map, Value};

use crate::context::Lang;
use crate::error::{index, join};
use crate::template::CallPath;

/// How deep `all`/`any`/`not` may nest.
const MAX_DEPTH: usize = 8;
/// The most entries in a list (`all`, `any`, `one_of`, `intent`, `channel`, `days`).
const MAX_LIST: usize = 50;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Value(Subject, Vec<Test>),
    Intent(Vec<String>),
    Sentiment { below: Option<f64>, above: Option<f64> },
    Channel(Vec<String>),
    Language(Vec<Lang>),
    Time { from: u32, to: u32, days: u8 },
}

/// What a value test looks at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Subject {
    Slot(String),
    Contact(String),
    Call(CallPath),
}

/// A test of a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Present(bool),
    Above(f64),
    Below(f64),
    Contains(String),
}

/// The facts a condition is checked against.
pub(crate) trait Facts {
    fn subject(&self, subject: &Subject) -> Option<Value>;
    fn intent(&self) -> Option<&str>;
    fn sentiment(&self) -> Option<f32>;
    fn channel(&self) -> &str;
    fn language(&self) -> Lang;
    /// Minute of the local day and weekday (0 = Monday).
    fn local_time(&self) -> (u32, u32);
}

/// A mistake at a path inside the condition.
pub(crate) type ParseErrors = Vec<(String, String)>;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Condition {
    /// Parses a condition; `path` locates it in the node (such as `cases[0].when`).
    pub(crate) fn parse(value: &Value, path: &str) -> Result<Condition, ParseErrors> {
        let mut errors = Vec::new();
        let parsed = parse(value, path, 0, &mut errors);
        match parsed {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(errors),
        }
    }

    /// Every slot and call path the condition reads.
    pub(crate) fn subjects(&self, out: &mut Vec<Subject>) {
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.subjects(out)),
            Condition::Not(c) => c.subjects(out),
            Condition::Value(s, _) => out.push(s.clone()),
            _ => {}
        }
    }

    /// Whether the condition holds. Something unknown (no sentiment, an unset slot) makes a
    /// test fail, except `present: false`.
    pub(crate) fn holds(&self, facts: &dyn Facts) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.holds(facts)),
            Condition::Any(cs) => cs.iter().any(|c| c.holds(facts)),
            Condition::Not(c) => !c.holds(facts),
            Condition::Value(subject, tests) => {
                let value = facts.subject(subject).filter(|v| !v.is_null());
                tests.iter().all(|t| test(t, value.as_ref()))
            }
            Condition::Intent(names) => facts.intent().is_some_and(|i| names.iter().any(|n| n == i)),
            Condition::Sentiment { below, above } => facts.sentiment().is_some_and(|s| {
                let s = f64::from(s);
                s.is_finite() && below.is_none_or(|b| s < b) && above.is_none_or(|a| s > a)
            }),
            Condition::Channel(channels) => channels.iter().any(|c| c == facts.channel()),
            Condition::Language(langs) => langs.contains(&facts.language()),
            Condition::Time { from, to, days } => {
                let (minute, weekday) = facts.local_time();
                let in_range = if from <= to {
                    (*from..*to).contains(&minute)
                } else {
                    // A range that runs past midnight: `22:00-06:00`.
                    minute >= *from || minute < *to
                };
                in_range && days & (1 << weekday) != 0
            }
        }
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Equal as numbers when both are numbers (or numeric text), else as text.
fn same(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (as_number(a), as_number(b))
        && (a.is_number() || b.is_number())
    {
        return x == y;
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::String(x), other) | (other, Value::String(x)) => match other {
            Value::Bool(flag) => x == &flag.to_string(),
            _ => false,
        },
        _ => a == b,
    }
}

fn test(t: &Test, value: Option<&Value>) -> bool {
    match t {
        Test::Present(expected) => value.is_some() == *expected,
        Test::Equals(expected) => value.is_some_and(|v| same(v, expected)),
        Test::OneOf(list) => value.is_some_and(|v| list.iter().any(|e| same(v, e))),
        Test::Above(bound) => value.and_then(as_number).is_some_and(|v| v > *bound),
        Test::Below(bound) => value.and_then(as_number).is_some_and(|v| v < *bound),
        Test::Contains(needle) => value.is_some_and(|v| match v {
            Value::String(s) => s.to_lowercase().contains(needle.as_str()),
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| s.to_lowercase() == *needle)),
            _ => false,
        }),
    }
}

fn err(errors: &mut ParseErrors, path: &str, message: impl Into<String>) {
    errors.push((path.to_owned(), message.into()));
}

fn strings(value: &Value, path: &str, errors: &mut ParseErrors) -> Option<Vec<String>> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.to_owned()),
                    None => err(errors, &index(path, i), "must be a string"),
                }
            }
            out
        }
        _ => {
            err(errors, path, "must be a string or a list of strings");
            return None;
        }
    };
    if list.is_empty() {
        err(errors, path, "must not be empty");
        return None;
    }
    if list.len() > MAX_LIST {
        err(errors, path, format!("at most {MAX_LIST} entries"));
        return None;
    }
    Some(list)
}

fn bound(value: &Value, path: &str, errors: &mut ParseErrors) -> Option<f64> {
    match value.as_f64() {
        Some(f) if f.is_finite() => Some(f),
        _ => {
            err(errors, path, "must be a number");
            None
        }
    }
}

fn scalar(value: &Value, path: &str, errors: &mut ParseErrors) -> Option<Value> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(value.clone()),
        _ => {
            err(errors, path, "must be a string, number or boolean");
            None
        }
    }
}

fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

fn only_keys(map: &Map<String, Value>, allowed: &[&str], path: &str, errors: &mut ParseErrors) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            err(
                errors,
                &join(path, key),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            );
        }
    }
}

fn parse(value: &Value, path: &str, depth: usize, errors: &mut ParseErrors) -> Option<Condition> {
    if depth > MAX_DEPTH {
        err(errors, path, format!("nested more than {MAX_DEPTH} deep"));
        return None;
    }
    let Some(map) = value.as_object() else {
        err(errors, path, "a condition must be an object");
        return None;
    };
    let subject_keys = ["slot", "contact", "call"];
    let subjects = subject_keys.iter().filter(|k| map.contains_key(**k)).count();
    if subjects > 0 {
        if subjects > 1 {
            err(errors, path, "test one of slot, contact or call at a time");
            return None;
        }
        return value_test(map, path, errors);
    }
    if map.len() != 1 {
        err(
            errors,
            path,
            "a condition is one of: all, any, not, slot, contact, call, intent, sentiment, channel, language, time",
        );
        return None;
    }
    let (key, inner) = map.iter().next()?;
    let at = join(path, key);
    match key.as_str() {
        "all" | "any" => {
            let Some(items) = inner.as_array() else {
                err(errors, &at, "must be a list of conditions");
                return None;
            };
            if items.is_empty() || items.len() > MAX_LIST {
                err(errors, &at, format!("must have 1 to {MAX_LIST} conditions"));
                return None;
            }
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, c)| parse(c, &index(&at, i), depth + 1, errors))
                .collect::<Option<Vec<_>>>()?;
            Some(if key == "all" {
                Condition::All(parsed)
            } else {
                Condition::Any(parsed)
            })
        }
        "not" => parse(inner, &at, depth + 1, errors).map(|c| Condition::Not(Box::new(c))),
        "intent" => strings(inner, &at, errors).map(Condition::Intent),
        "channel" => strings(inner, &at, errors).map(Condition::Channel),
        "language" => {
            let names = strings(inner, &at, errors)?;
            let mut langs = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match name.as_str() {
                    "zh" => langs.push(Lang::Zh),
                    "en" => langs.push(Lang::En),
                    _ => err(errors, &index(&at, i), "must be \"zh\" or \"en\""),
                }
            }
            Some(Condition::Language(langs))
        }
        "sentiment" => {
            let Some(bounds) = inner.as_object() else {
                err(errors, &at, "must be an object with below and/or above");
                return None;
            };
            only_keys(bounds, &["below", "above"], &at, errors);
            let below = bounds.get("below").and_then(|b| bound(b, &join(&at, "below"), errors));
            let above = bounds.get("above").and_then(|b| bound(b, &join(&at, "above"), errors));
            if below.is_none() && above.is_none() {
                err(errors, &at, "needs below, above or both");
                return None;
            }
            for (name, b) in [("below", below), ("above", above)] {
                if b.is_some_and(|b| !(-1.0..=1.0).contains(&b)) {
                    err(errors, &join(&at, name), "must be between -1 and 1");
                }
            }
            Some(Condition::Sentiment { below, above })
        }
        "time" => {
            let Some(fields) = inner.as_object() else {
                err(errors, &at, "must be an object with between and/or days");
                return None;
            };
            only_keys(fields, &["between", "days"], &at, errors);
            let (mut from, mut to) = (0, 24 * 60);
            if let Some(between) = fields.get("between") {
                let p = join(&at, "between");
                match between
                    .as_str()
                    .and_then(|s| s.split_once('-'))
                    .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
                {
                    Some((a, b)) if a != b => (from, to) = (a, b),
                    _ => err(errors, &p, "must be \"HH:MM-HH:MM\" with different times"),
                }
            }
            let mut days = 0x7f;
            if let Some(list) = fields.get("days") {
                let p = join(&at, "days");
                days = 0;
                for (i, name) in strings(list, &p, errors).unwrap_or_default().iter().enumerate() {
                    match DAYS.iter().position(|d| d == name) {
                        Some(bit) => days |= 1 << bit,
                        None => err(
                            errors,
                            &index(&p, i),
                            "must be one of mon, tue, wed, thu, fri, sat, sun",
                        ),
                    }
                }
            }
            if fields.is_empty() {
                err(errors, &at, "needs between, days or both");
            }
            Some(Condition::Time { from, to, days })
        }
        _ => {
            err(
                errors,
                &at,
                "unknown condition; expected all, any, not, slot, contact, call, intent, sentiment, channel, language or time",
            );
            None
        }
    }
}

fn value_test(map: &Map<String, Value>, path: &str, errors: &mut ParseErrors) -> Option<Condition> {
    only_keys(
        map,
        &[
            "slot", "contact", "call", "equals", "one_of", "present", "above", "below", "contains",
        ],
        path,
        errors,
    );
    let subject = if let Some(name) = map.get("slot") {
        Subject::Slot(name_of(name, &join(path, "slot"), errors)?)
    } else if let Some(name) = map.get("contact") {
        Subject::Contact(name_of(name, &join(path, "contact"), errors)?)
    } else {
        let p = join(path, "call");
        let Some(text) = map.get("call").and_then(Value::as_str) else {
            err(errors, &p, "must be `status` or a path such as `body.status`");
            return None;
        };
        match CallPath::parse(text) {
            Ok(call) => Subject::Call(call),
            Err(e) => {
                err(errors, &p, e);
                return None;
            }
        }
    };
    let mut tests = Vec::new();
    for (key, value) in map {
        let at = join(path, key);
        match key.as_str() {
            "equals" => tests.extend(scalar(value, &at, errors).map(Test::Equals)),
            "one_of" => match value.as_array() {
                Some(items) if !items.is_empty() && items.len() <= MAX_LIST => {
                    let list = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| scalar(v, &index(&at, i), errors))
                        .collect();
                    tests.push(Test::OneOf(list));
                }
                _ => err(errors, &at, format!("must be a list of 1 to {MAX_LIST} values")),
            },
            "present" => match value.as_bool() {
                Some(flag) => tests.push(Test::Present(flag)),
                None => err(errors, &at, "must be true or false"),
            },
            "above" => tests.extend(bound(value, &at, errors).map(Test::Above)),
            "below" => tests.extend(bound(value, &at, errors).map(Test::Below)),
            "contains" => match value.as_str() {
                Some(s) if !s.is_empty() => tests.push(Test::Contains(s.to_lowercase())),
                _ => err(errors, &at, "must be a non-empty string"),
            },
            _ => {}
        }
    }
    if tests.is_empty() {
        err(
            errors,
            path,
            "needs a test: equals, one_of, present, above, below or contains",
        );
        return None;
    }
    Some(Condition::Value(subject, tests))
}

fn name_of(value: &Value, path: &str, errors: &mut ParseErrors) -> Option<String> {
    match value.as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= 64 => Some(s.to_owned()),
        _ => {
            err(errors, path, "must be a name of 1 to 64 characters");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct F {
        status: Option<Value>,
        sentiment: Option<f32>,
        minute: u32,
        weekday: u32,
    }

    impl Facts for F {
        fn subject(&self, subject: &Subject) -> Option<Value> {
            match subject {
                Subject::Slot(s) if s == "status" => self.status.clone(),
                Subject::Contact(c) if c == "tier" => Some(Value::from("vip")),
                Subject::Call(CallPath::Status) => Some(Value::from(200)),
                _ => None,
            }
        }
        fn intent(&self) -> Option<&str> {
            Some("order_status")
        }
        fn sentiment(&self) -> Option<f32> {
            self.sentiment
        }
        fn channel(&self) -> &str {
            "wechat"
        }
        fn language(&self) -> Lang {
            Lang::Zh
        }
        fn local_time(&self) -> (u32, u32) {
            (self.minute, self.weekday)
        }
    }

    fn facts() -> F {
        F {
            status: Some(Value::from("shipped")),
            sentiment: Some(-0.7),
            minute: 23 * 60,
            weekday: 5,
        }
    }

    fn holds(c: Value) -> bool {
        Condition::parse(&c, "when").unwrap().holds(&facts())
    }

    #[test]
    fn given_conditions_when_checked_then_each_kind_decides() {
        assert!(holds(json!({"slot": "status", "equals": "shipped"})));
        assert!(!holds(json!({"slot": "status", "equals": "delivered"})));
        assert!(holds(json!({"slot": "status", "one_of": ["paid", "shipped"]})));
        assert!(holds(json!({"slot": "missing", "present": false})));
        assert!(!holds(json!({"slot": "missing", "equals": ""})));
        assert!(holds(json!({"contact": "tier", "equals": "vip"})));
        assert!(holds(json!({"call": "status", "equals": 200})));
        assert!(holds(json!({"call": "status", "equals": "200"})));
        assert!(holds(json!({"call": "status", "above": 199, "below": 300})));
        assert!(holds(json!({"slot": "status", "contains": "SHIP"})));
        assert!(holds(json!({"sentiment": {"below": -0.5}})));
        assert!(!holds(json!({"sentiment": {"above": 0.0}})));
        assert!(holds(json!({"intent": ["refund", "order_status"]})));
        assert!(holds(json!({"channel": "wechat"})));
        assert!(holds(json!({"language": "zh"})));
        assert!(holds(json!({"time": {"between": "22:00-06:00", "days": ["sat"]}})));
        assert!(!holds(json!({"time": {"between": "09:00-18:00"}})));
        assert!(holds(
            json!({"all": [{"channel": "wechat"}, {"not": {"intent": "refund"}}]})
        ));
        assert!(holds(
            json!({"any": [{"channel": "web"}, {"slot": "status", "present": true}]})
        ));
        let unknown = F {
            sentiment: None,
            ..facts()
        };
        let c = Condition::parse(&json!({"sentiment": {"below": 0.5}}), "when").unwrap();
        assert!(!c.holds(&unknown), "an unknown sentiment does not hold");
    }

    #[test]
    fn given_bad_conditions_when_parsed_then_errors_name_the_field() {
        let cases = [
            (json!("x"), "when"),
            (json!({"slot": "a"}), "when"),
            (json!({"slot": "a", "equal": 1}), "when.equal"),
            (json!({"sentiment": {"below": -2}}), "when.sentiment.below"),
            (json!({"time": {"between": "9-18"}}), "when.time.between"),
            (json!({"time": {"days": ["monday"]}}), "when.time.days[0]"),
            (json!({"all": [{"intent": []}]}), "when.all[0].intent"),
            (json!({"colour": "red"}), "when.colour"),
            (json!({"call": "headers.x", "equals": 1}), "when.call"),
            (json!({"slot": "a", "contact": "b", "equals": 1}), "when"),
        ];
        for (c, path) in cases {
            let errors = Condition::parse(&c, "when").unwrap_err();
            assert!(errors.iter().any(|(p, _)| p == path), "{c}: {errors:?}");
        }
        let mut deep = json!({"channel": "web"});
        for _ in 0..20 {
            deep = json!({"not": deep});
        }
        assert!(Condition::parse(&deep, "when").is_err());
    }
}
