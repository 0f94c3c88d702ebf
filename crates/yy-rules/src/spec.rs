//! The rule-set format as tenants write it: plain serde types, one per JSON object.
//!
//! These types only describe shape. A value of them may still be invalid (an unknown queue, a
//! sentiment bound of 3, a duplicate name): [`RuleSet::from_spec`](crate::RuleSet::from_spec)
//! checks everything and is the only way to a [`RuleSet`](crate::RuleSet).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::facts::{Language, SentimentLabel};

/// A whole rule set: `{"version": 3, "rules": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSpec {
    /// The tenant's version number of this rule set, at least 1. Every decision names it.
    pub version: u64,
    /// The rules, tried in order; the first that matches decides. The last must have no
    /// conditions (the default), so every message gets a decision.
    pub rules: Vec<RuleSpec>,
}

/// One rule: a name, conditions that must all hold, and what to do then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique within the set; 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    pub name: String,
    /// Free text for the people who maintain the rules (at most 500 characters); never evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The conditions; all must hold. Absent or `{}`: the rule matches every message.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub when: Conditions,
    /// What happens when the rule matches.
    pub then: ActionSpec,
}

/// A rule's conditions. Each is optional and all that are given must hold.
///
/// A list without another meaning means "any of": `"channel": ["web", "app"]` holds on either
/// channel. A condition about something the facts do not know (no sentiment score, no language)
/// does not hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The top intent is one of these, with at least this confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentCondition>,
    /// The sentiment score lies strictly inside the given bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<SentimentCondition>,
    /// The sentiment label is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment_label: Option<Vec<SentimentLabel>>,
    /// The message's language is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Vec<Language>>,
    /// The conversation's channel is one of these (`a-z`, `0-9`, `_`; compared exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Vec<String>>,
    /// Tests on the contact's attributes, by attribute name; all must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_attributes: Option<BTreeMap<String, AttributeTest>>,
    /// The message text contains one of these, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// The message arrives inside (or outside) the weekly opening hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHoursCondition>,
    /// The conversation is waiting for an agent, for a time within the given bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_seconds: Option<WaitingCondition>,
    /// The language understanding could (`false`) or could not (`true`) classify the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
    /// The top intents were (`true`) or were not (`false`) too close to tell apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous: Option<bool>,
    /// The customer did (`true`) or did not (`false`) ask for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_requested: Option<bool>,
    /// At least this many low-confidence messages in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated_low_confidence: Option<AtLeast>,
}

impl Conditions {
    /// True when no condition is given: a rule with these conditions matches every message.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }
}

/// `{"one_of": ["refund"], "min_confidence": 0.6}`: the top intent (see
/// [`Facts::top_intent`](crate::Facts::top_intent)) is named in `one_of` and its confidence is at
/// least `min_confidence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentCondition {
    /// Intent names, compared exactly; 1 to 100 of them, each 1 to 128 characters.
    pub one_of: Vec<String>,
    /// From 0 to 1; 0 when absent.
    #[serde(default)]
    pub min_confidence: f32,
}

/// `{"below": -0.5}`, `{"above": 0.3}` or both: the score is strictly below `below` and strictly
/// above `above`. Bounds lie in [-1, 1]; at least one is given; `above` < `below`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentCondition {
    /// Upper bound, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f32>,
    /// Lower bound, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f32>,
}

/// A test on one contact attribute: `{"one_of": ["vip", "gold"]}` (present and equal to one of
/// the values, compared exactly) or `{"present": true}` / `{"present": false}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "AttributeTestFields")]
pub enum AttributeTest {
    /// The attribute is set to one of these values (1 to 100 of them).
    OneOf(Arc<[String]>),
    /// The attribute is set (`true`) or not set (`false`), whatever its value.
    Present(bool),
}

/// Read as an object with optional fields, so that a test with both or neither gets a message
/// that says so (an externally tagged enum would only say "expected value").
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "AttributeTest")]
struct AttributeTestFields {
    #[serde(default)]
    one_of: Option<Arc<[String]>>,
    #[serde(default)]
    present: Option<bool>,
}

impl TryFrom<AttributeTestFields> for AttributeTest {
    type Error = &'static str;

    fn try_from(fields: AttributeTestFields) -> Result<Self, Self::Error> {
        match (fields.one_of, fields.present) {
            (Some(values), None) => Ok(AttributeTest::OneOf(values)),
            (None, Some(present)) => Ok(AttributeTest::Present(present)),
            _ => Err(r#"give exactly one of "one_of" and "present""#),
        }
    }
}

/// Weekly opening hours in a fixed UTC offset, and whether the rule wants a message inside or
/// outside them.
///
/// ```json
/// {"utc_offset_minutes": 480, "schedule": {"mon": ["09:00-12:00", "13:00-18:00"]}, "inside": true}
/// ```
///
/// Ranges are `HH:MM-HH:MM` in local time, start inclusive, end exclusive; `24:00` ends a day.
/// A range whose end is earlier than its start runs past midnight into the next day
/// (`"fri": ["22:00-02:00"]` is open from Friday 22:00 to Saturday 02:00, and Sunday's runs into
/// Monday). A day that is absent or empty has no range starting on it. The offset is fixed:
/// daylight-saving changes need a new rule-set version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursCondition {
    /// Local time minus UTC, in minutes, from -720 to 840 (480 for China Standard Time).
    pub utc_offset_minutes: i32,
    /// The opening hours; at least one range.
    pub schedule: WeeklySchedule,
    /// `true` (the default): the rule holds during opening hours; `false`: outside them.
    #[serde(default = "default_true")]
    pub inside: bool,
}

fn default_true() -> bool {
    true
}

/// Opening-hour ranges (`HH:MM-HH:MM`) starting on each weekday; at most 16 per day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklySchedule {
    /// Monday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<String>,
    /// Tuesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<String>,
    /// Wednesday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<String>,
    /// Thursday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<String>,
    /// Friday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<String>,
    /// Saturday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<String>,
    /// Sunday.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<String>,
}

impl WeeklySchedule {
    /// The days with their JSON names, Monday first.
    pub fn days(&self) -> [(&'static str, &[String]); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}

/// `{"at_least": 120}`, `{"below": 600}` or both, in seconds: the conversation is waiting, for at
/// least `at_least` and less than `below`. At least one is given; `at_least` < `below`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingCondition {
    /// Lower bound, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    /// Upper bound, exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<u64>,
}

/// `{"at_least": 2}`: a count of at least this much (1 or more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtLeast {
    /// The smallest count that holds.
    pub at_least: u32,
}

/// Where a rule sends the message, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// The bot answers.
    Bot,
    /// A queue of human agents answers.
    Queue,
}

/// What a rule does, as written:
/// `{"route": "bot"}` or
/// `{"route": "queue", "queue": "vip", "priority": 9, "skills": [{"name": "refund", "min_level": 2}],
/// "languages": ["zh"]}`, either with optional `"add_tags": [...]` and `"escalate": true`.
///
/// `queue`, `priority`, `skills` and `languages` belong to `"route": "queue"` only, and `queue`
/// is required there. Validation turns this into an [`Action`](crate::Action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// Bot or queue.
    pub route: RouteKind,
    /// The queue's name: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// 1 to 10, higher is served first; 5 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Skills the answering agent needs, all of them; at most 20, names unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<SkillSpec>>,
    /// The agent must speak one of these; empty or absent: any agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<Language>>,
    /// Tags to add to the conversation: at most 20, unique, each 1 to 50 characters without
    /// control characters or surrounding spaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    /// Flag the conversation for a supervisor's attention.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escalate: bool,
}

/// A skill requirement as written: `{"name": "refund", "min_level": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillSpec {
    /// The skill: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    pub name: String,
    /// 1 to 5; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<u32>,
}
