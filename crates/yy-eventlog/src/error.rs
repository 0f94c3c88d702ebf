use thiserror::Error;

/// A failure of the event log other than an append conflict.
#[derive(Debug, Error)]
pub enum LogError {
    /// A tenant or aggregate id that cannot be a subject token.
    #[error("invalid {kind} id {value:?}: use 1-128 ASCII letters, digits, '_' or '-'")]
    InvalidId {
        /// "tenant" or "aggregate".
        kind: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// The configured partition count differs from the one the existing streams were created with.
    #[error(
        "the {context} log exists with {existing} partitions but {configured} are configured; \
         the partition count of an existing log cannot change"
    )]
    PartitionCountMismatch {
        /// The context's name.
        context: &'static str,
        /// The count recorded on the existing streams.
        existing: u32,
        /// The count in config.
        configured: u32,
    },
    /// The server or the streams cannot keep acknowledged writes (see [`crate::DurabilityReport`]).
    #[error("unsafe durability setup: {0}")]
    Unsafe(String),
    /// A stored message that is not a valid commit.
    #[error("corrupt commit at {stream} sequence {sequence}: {reason}")]
    Corrupt {
        /// The stream it is in.
        stream: String,
        /// Its sequence.
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
    /// The configuration is invalid.
    #[error("invalid event log config: {0}")]
    Config(String),
    /// The log cannot take writes yet (such as a replicated stream without a leader).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// NATS or JetStream failed; the message names the operation.
    #[error("{op}: {source}")]
    Nats {
        /// What was being done.
        op: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LogError {
    pub(crate) fn nats(op: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        LogError::Nats {
            op: op.into(),
            source: Box::new(source),
        }
    }
}

/// Why an append was not stored.
#[derive(Debug, Error)]
pub enum AppendError {
    /// Another commit reached the aggregate first: the expected last sequence no longer holds.
    /// Reload the aggregate, decide again and retry.
    #[error("concurrent write to {aggregate_id}: expected last sequence {expected}")]
    Conflict {
        /// The aggregate written concurrently.
        aggregate_id: String,
        /// The last subject sequence the caller expected.
        expected: u64,
    },
    /// A commit must hold at least one event.
    #[error("a commit needs at least one event")]
    Empty,
    /// Any other failure; the commit may or may not have been stored, and retrying with the same
    /// command id is safe within the duplicate window.
    #[error(transparent)]
    Log(#[from] LogError),
}
