//! The outcome of evaluating a rule set, with its explanation.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::action::Action;
use crate::facts::{IntentScore, Language, SentimentLabel};
use crate::spec::AttributeTest;

/// Which rule decided, what to do, and why every rule before it did not match.
///
/// Serialised for an event it reads:
///
/// ```json
/// {
///   "version": 3, "rule_index": 2, "rule_name": "refund-in-hours",
///   "action": {"route": "queue", "queue": "refunds", "priority": 6, "skills": [...], "languages": [], "add_tags": [], "escalate": false},
///   "skipped": [
///     {"index": 0, "name": "vip-angry", "failed": {"condition": "contact_attribute", "key": "tier", "expected": {"one_of": ["vip", "gold"]}, "actual": null}},
///     {"index": 1, "name": "handoff", "failed": {"condition": "handoff_requested", "expected": true, "actual": false}}
///   ]
/// }
/// ```
///
/// Invariants: `skipped` holds exactly the rules before `rule_index`, in order, one entry each;
/// the decision is a pure function of the rule set and the [`Facts`](crate::Facts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The rule set's version.
    pub version: u64,
    /// The position of the rule that matched, from 0.
    pub rule_index: usize,
    /// The name of the rule that matched.
    pub rule_name: Arc<str>,
    /// What to do.
    pub action: Arc<Action>,
    /// The rules tried before it, each with the first condition that did not hold.
    pub skipped: Vec<Skipped>,
}

/// A rule that did not match, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The rule's position, from 0.
    pub index: usize,
    /// The rule's name.
    pub name: Arc<str>,
    /// The first condition that did not hold, in evaluation order (see the crate documentation).
    pub failed: Mismatch,
}

/// A condition that did not hold: the expected values (shared with the rule set, so recording
/// them costs no copy) and the actual ones from the facts.
///
/// Actual text values are cut to 128 characters; the message text itself is never recorded.
/// Actual numbers that were not finite are recorded as absent (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mismatch {
    /// `handoff_requested` differed.
    HandoffRequested {
        /// The rule's value.
        expected: bool,
        /// The facts' value.
        actual: bool,
    },
    /// `fallback` differed.
    Fallback {
        /// The rule's value.
        expected: bool,
        /// The facts' value.
        actual: bool,
    },
    /// `ambiguous` differed.
    Ambiguous {
        /// The rule's value.
        expected: bool,
        /// The facts' value.
        actual: bool,
    },
    /// Fewer low-confidence messages in a row than `at_least`.
    RepeatedLowConfidence {
        /// The rule's threshold.
        at_least: u32,
        /// The facts' count.
        actual: u32,
    },
    /// The language was unknown or not listed.
    Language {
        /// The rule's languages.
        expected: Arc<[Language]>,
        /// The detected language.
        actual: Option<Language>,
    },
    /// The channel was not listed.
    Channel {
        /// The rule's channels.
        expected: Arc<[String]>,
        /// The conversation's channel.
        actual: String,
    },
    /// The sentiment label was unknown or not listed.
    SentimentLabel {
        /// The rule's labels.
        expected: Arc<[SentimentLabel]>,
        /// The message's label.
        actual: Option<SentimentLabel>,
    },
    /// The sentiment score was unknown or outside the bounds.
    Sentiment {
        /// The rule's exclusive lower bound.
        above: Option<f32>,
        /// The rule's exclusive upper bound.
        below: Option<f32>,
        /// The message's score.
        actual: Option<f32>,
    },
    /// The top intent was missing, not listed, or below the confidence.
    Intent {
        /// The rule's intents.
        expected: Arc<[String]>,
        /// The rule's minimum confidence.
        min_confidence: f32,
        /// The top intent.
        actual: Option<IntentScore>,
    },
    /// The conversation was not waiting, or not for a time within the bounds.
    WaitingSeconds {
        /// The rule's inclusive lower bound.
        at_least: Option<u64>,
        /// The rule's exclusive upper bound.
        below: Option<u64>,
        /// The facts' waiting time.
        actual: Option<u64>,
    },
    /// The message arrived outside the opening hours when the rule wanted inside, or inside when
    /// it wanted outside.
    BusinessHours {
        /// The rule's `inside`.
        inside: bool,
        /// The local weekday and time (in the rule's UTC offset) the message arrived at.
        local_time: LocalTime,
    },
    /// A contact attribute test failed.
    ContactAttribute {
        /// The attribute's name.
        key: Arc<str>,
        /// The rule's test.
        expected: AttributeTest,
        /// The contact's value, `null` when not set.
        actual: Option<String>,
    },
    /// The text contained none of the keywords.
    Keywords {
        /// The rule's keywords, as written.
        expected: Arc<[String]>,
    },
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The short lowercase name: `"mon"` to `"sun"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }
}

/// A local weekday and minute of the day, serialised as `"fri 18:42"`.
///
/// Invariant: `minute_of_day` is below 1440.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    /// The weekday.
    pub weekday: Weekday,
    /// Minutes since local midnight, 0 to 1439.
    pub minute_of_day: u16,
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:02}:{:02}",
            self.weekday.as_str(),
            self.minute_of_day / 60,
            self.minute_of_day % 60
        )
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_local_time(&text).ok_or_else(|| de::Error::custom(format!("expected \"ddd HH:MM\", got {text:?}")))
    }
}

fn parse_local_time(text: &str) -> Option<LocalTime> {
    let (day, time) = text.split_once(' ')?;
    let weekday = Weekday::ALL.into_iter().find(|d| d.as_str() == day)?;
    let minute_of_day = crate::hours::parse_clock(time).filter(|m| *m < crate::hours::MINUTES_PER_DAY)?;
    Some(LocalTime {
        weekday,
        minute_of_day: u16::try_from(minute_of_day).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_round_trips_as_text() {
        let t = LocalTime {
            weekday: Weekday::Fri,
            minute_of_day: 18 * 60 + 42,
        };
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(json, r#""fri 18:42""#);
        assert_eq!(serde_json::from_str::<LocalTime>(&json).ok(), Some(t));
        assert!(serde_json::from_str::<LocalTime>(r#""fri 24:00""#).is_err());
        assert!(serde_json::from_str::<LocalTime>(r#""xyz 10:00""#).is_err());
    }
}
