//! Language understanding for routing customer messages, in Chinese and English.
//!
//! One call, [`Analyzer::analyze`], gives the router what it needs to decide whether the bot or a
//! human answers a message:
//!
//! - the [`Language`] (`zh`, `en`, `mixed` or `unknown`), by script;
//! - the intents ([`Classification`]): the three most likely with calibrated confidences, and
//!   whether the message is not understood (`fallback`) or torn between two intents
//!   (`ambiguous`);
//! - the [`Sentiment`], from -1 to 1, with a label;
//! - the [`Entity`]s: order numbers, phone numbers and e-mail addresses, with byte spans.
//!
//! The built-in intent set ([`default_intents`]) covers order status, shipping, refunds,
//! complaints, human handoff, greetings, thanks, accounts and payment. A tenant replaces or
//! extends it by training an [`IntentModel`] on its own [`IntentDef`]s.
//!
//! Everything here is synchronous, deterministic and CPU-only, and never panics on any input:
//! empty text, control characters, emoji and very long messages are all fine, with cost linear in
//! the message length. The Chinese segmenter's dictionary is loaded once per process and shared;
//! call [`warm_up`] at start-up to load it before the first message arrives.
//!
//! ```
//! let analyzer = yy_nlu::Analyzer::default_bilingual();
//! let a = analyzer.analyze("订单 A-1024 怎么还没发货？气死我了");
//! assert_eq!(a.language, yy_nlu::Language::Zh);
//! assert_eq!(a.intents.intent(), Some("order_status"));
//! assert_eq!(a.sentiment.label, yy_nlu::SentimentLabel::Negative);
//! assert_eq!(a.entities[0].value, "A-1024");
//! ```

mod entities;
mod error;
mod intent;
mod language;
mod sentiment;
mod text;
mod tokenize;

use serde::{Deserialize, Serialize};

pub use entities::{Entity, EntityConfig, EntityExtractor, EntityKind, entities};
pub use error::NluError;
pub use intent::{
    Classification, IntentDef, IntentModel, Thresholds, default_intents, default_out_of_scope, extend_intents,
    intents_from_json,
};
pub use language::{Language, detect_language};
pub use sentiment::{NEUTRAL_BAND, Sentiment, SentimentLabel, sentiment};
pub use tokenize::{Token, TokenKind, tokenize, warm_up};

/// Everything the router needs about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The message's language (the same as `intents.language`).
    pub language: Language,
    /// Intent classification.
    pub intents: Classification,
    /// Sentiment.
    pub sentiment: Sentiment,
    /// Entities, sorted by position, never overlapping.
    pub entities: Vec<Entity>,
}

/// Analyses messages with one intent model and one entity configuration.
///
/// Immutable and `Send + Sync`: build one per intent set (per tenant, when tenants differ) and
/// share it behind an `Arc` across threads.
#[derive(Debug, Clone)]
pub struct Analyzer {
    intents: IntentModel,
    entities: EntityExtractor,
}

impl Analyzer {
    /// An analyzer with the given intent model and entity extractor. Loads the shared
    /// dictionaries and lexicons if no one has yet.
    pub fn new(intents: IntentModel, entities: EntityExtractor) -> Self {
        warm_up();
        Analyzer { intents, entities }
    }

    /// The built-in bilingual intents ([`IntentModel::default_bilingual`]) and the default entity
    /// patterns. Training takes a few milliseconds; build it once.
    pub fn default_bilingual() -> Self {
        Self::new(IntentModel::default_bilingual(), EntityExtractor::default())
    }

    /// The intent model in use.
    pub fn intent_model(&self) -> &IntentModel {
        &self.intents
    }

    /// The entity extractor in use.
    pub fn entity_extractor(&self) -> &EntityExtractor {
        &self.entities
    }

    /// Analyses one message: language, intents, sentiment and entities. Never panics; linear in
    /// the length of `text`.
    pub fn analyze(&self, text: &str) -> Analysis {
        let language = detect_language(text);
        Analysis {
            language,
            intents: self.intents.classify_in(text, language),
            sentiment: sentiment(text),
            entities: self.entities.extract(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Analyzer>();
        shareable::<IntentModel>();
        shareable::<EntityExtractor>();
    }

    #[test]
    fn analysis_round_trips_as_json() {
        let a = Analyzer::default_bilingual().analyze("refund for order #20231125-7781 please, terrible!!!");
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains(r#""language":"en""#), "{json}");
        assert!(json.contains(r#""kind":"order_number""#), "{json}");
        let back: Analysis = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn odd_input_never_panics() {
        let analyzer = Analyzer::default_bilingual();
        let mut inputs: Vec<String> = [
            "",
            " ",
            "\u{0}\u{1}\u{2}\u{7f}\u{85}\u{2028}",
            "😀😃😄🤬👍🏽❤️‍🔥🏳️‍🌈",
            "\u{202e}订单\u{200b}A-1024\u{feff}",
            "ＡＢＣ１２３４５６７８订单",
            "'\"\\/<>{}[]()*&^%$#@!~`",
            "e\u{301}\u{302}\u{303}\u{304}",
            "\u{fffd}\u{fffd}",
            "𠀀𠀁𪚲𰻞",
            "ﷺ ﷽ Ꙫ ꙮ",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        inputs.push("我要退款，订单 A-1024，太差了！😡 ".repeat(3_000));
        inputs.push("refund order #20231125-7781 terrible!!! ".repeat(2_600));
        inputs.push("x".repeat(100_000));
        inputs.push("人".repeat(100_000));
        inputs.push("1".repeat(100_000));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut s = String::new();
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let pick = (state % 8) as u32;
                let c = match pick {
                    0 => char::from_u32((state >> 20) as u32 % 0x80),
                    1 => char::from_u32(0x4E00 + (state >> 20) as u32 % 0x5000),
                    2 => char::from_u32(0x1F300 + (state >> 20) as u32 % 0x700),
                    3 => Some(['!', '！', '#', '@', '+', '-', '\'', ' '][(state >> 20) as usize % 8]),
                    4 => char::from_u32(0x30 + (state >> 20) as u32 % 10),
                    _ => char::from_u32((state >> 24) as u32 % 0x11_0000),
                };
                s.push(c.unwrap_or('\u{fffd}'));
            }
            inputs.push(s);
        }
        for text in &inputs {
            let a = analyzer.analyze(text);
            assert!((-1.0..=1.0).contains(&a.sentiment.score));
            assert!(a.intents.top.iter().map(|t| t.1).sum::<f32>() <= 1.0 + 1e-5);
            for e in &a.entities {
                assert_eq!(&text[e.span.clone()], e.value);
            }
            let _ = tokenize(text);
        }
    }
}
