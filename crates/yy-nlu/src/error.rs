//! Errors of this crate.

/// Why an intent set, a threshold or an entity pattern was refused.
///
/// Every variant about an intent names it, so a tenant can find the bad definition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NluError {
    /// The intent list is empty.
    #[error("no intents to train on")]
    NoIntents,
    /// An intent name is empty, too long, or holds control characters.
    #[error("intent name {name:?} is invalid: {reason}")]
    InvalidIntentName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two definitions share a name.
    #[error("intent {intent:?} is defined twice")]
    DuplicateIntent {
        /// The repeated name.
        intent: String,
    },
    /// An intent has no example utterances.
    #[error("intent {intent:?} has no examples")]
    NoExamples {
        /// The intent.
        intent: String,
    },
    /// An example yields nothing to learn from (empty, punctuation or stop words only).
    #[error(
        "example {index} of intent {intent:?} ({example:?}) has nothing to learn from: it is empty or only punctuation and stop words"
    )]
    UnusableExample {
        /// The intent.
        intent: String,
        /// Position of the example in the intent's list, from 0.
        index: usize,
        /// The example, cut to its first 80 characters.
        example: String,
    },
    /// A threshold is not a number within `[0, 1]`.
    #[error("threshold {name} must be within [0, 1], got {value}")]
    InvalidThreshold {
        /// Field name in [`Thresholds`](crate::Thresholds).
        name: &'static str,
        /// The refused value.
        value: f32,
    },
    /// An entity pattern does not compile.
    #[error("order-number pattern {pattern:?} is invalid: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// Intent definitions in JSON could not be read.
    #[error("intent definitions are not valid: {0}")]
    InvalidDefinitions(String),
}
