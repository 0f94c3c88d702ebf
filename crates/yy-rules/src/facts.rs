//! What is known about a customer message when it is routed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The language a message is written in, as the language understanding detected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Chinese.
    Zh,
    /// English.
    En,
    /// Chinese and English mixed in one message.
    Mixed,
}

/// The coarse sentiment of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    /// Unhappy, angry, frustrated.
    Negative,
    /// Neither.
    Neutral,
    /// Happy, grateful.
    Positive,
}

/// One intent the language understanding considered, with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    /// The intent's name, as the tenant's language understanding names it (compared exactly).
    pub name: String,
    /// How sure the classifier is, from 0 to 1. A value that is not finite (NaN, ±∞) makes the
    /// intent count as absent.
    pub confidence: f32,
}

/// Everything a rule can look at, for one customer message.
///
/// The routing service builds one per message from the conversation, the contact and the
/// language understanding's result. Nothing here is read from a clock or the network: `now` is
/// given, so the same facts always give the same [`Decision`](crate::Decision).
///
/// Missing knowledge is expressed as `None` (or the default), and a condition about something
/// unknown does not hold: a rule with `sentiment.below` never matches a message without a
/// sentiment score. Numbers that are not finite count as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    /// The intents the language understanding considered, in any order. The top intent is the
    /// one with the highest finite confidence (the earliest of equals); see [`Facts::top_intent`].
    pub intents: Vec<IntentScore>,
    /// The language understanding could not classify the message (no intent reached its
    /// threshold).
    pub fallback: bool,
    /// The top intents were too close to tell apart.
    pub ambiguous: bool,
    /// The sentiment score, from -1 (most negative) to 1 (most positive).
    pub sentiment: Option<f32>,
    /// The sentiment label.
    pub sentiment_label: Option<SentimentLabel>,
    /// The message's language, when detected.
    pub language: Option<Language>,
    /// The channel the conversation is on, such as `"web"` or `"wechat"` (compared exactly).
    pub channel: String,
    /// The contact's custom attributes (compared exactly).
    pub contact_attributes: BTreeMap<String, String>,
    /// The message text that `keywords` conditions search.
    pub text: String,
    /// The time the message is routed, in seconds since the Unix epoch (UTC).
    pub now: i64,
    /// How long the conversation has been waiting for an agent, in seconds; `None` when it is not
    /// waiting.
    pub waiting_seconds: Option<u64>,
    /// The customer asked for a human.
    pub handoff_requested: bool,
    /// How many of the customer's latest messages in a row, this one included, the language
    /// understanding classified with low confidence.
    pub consecutive_low_confidence: u32,
}

impl Facts {
    /// The intent with the highest finite confidence, the earliest of equals; `None` when there is
    /// no intent with a finite confidence.
    pub fn top_intent(&self) -> Option<&IntentScore> {
        let mut top: Option<&IntentScore> = None;
        for intent in &self.intents {
            if !intent.confidence.is_finite() {
                continue;
            }
            if top.is_none_or(|best| intent.confidence > best.confidence) {
                top = Some(intent);
            }
        }
        top
    }

    /// The sentiment score when it is known and finite.
    pub fn finite_sentiment(&self) -> Option<f32> {
        self.sentiment.filter(|score| score.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(name: &str, confidence: f32) -> IntentScore {
        IntentScore {
            name: name.to_owned(),
            confidence,
        }
    }

    #[test]
    fn top_intent_is_the_most_confident_and_skips_non_finite() {
        let facts = Facts {
            intents: vec![
                intent("a", 0.2),
                intent("b", f32::NAN),
                intent("c", 0.7),
                intent("d", f32::INFINITY),
                intent("e", 0.7),
            ],
            ..Facts::default()
        };
        assert_eq!(facts.top_intent().map(|i| i.name.as_str()), Some("c"));
        let none = Facts {
            intents: vec![intent("x", f32::NAN)],
            ..Facts::default()
        };
        assert_eq!(none.top_intent(), None);
    }

    #[test]
    fn facts_deserialize_with_defaults() {
        let facts: Facts = serde_json::from_str(r#"{"channel":"web","language":"zh"}"#).unwrap_or_default();
        assert_eq!(facts.channel, "web");
        assert_eq!(facts.language, Some(Language::Zh));
        assert!(facts.intents.is_empty());
    }
}
