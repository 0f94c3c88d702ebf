//! The event log: every fact Yiwaiwai knows, kept in NATS JetStream, and the only code that talks to
//! JetStream directly.
//!
//! A log *context* (such as `conv`) is split into a fixed number of partitions, each its own stream
//! `YY_<CONTEXT>_<P>` holding subjects `yy.evt.<context>.<p>.<tenant>.<aggregate_id>`. An aggregate
//! lives in partition `fnv1a64(aggregate_id) % partitions`, so all of one aggregate's commits are in
//! one stream, in order. Each JetStream message is one [`Commit`]:
//! the events of one command, stored together or not at all.
//!
//! - [`EventLog::provision`] creates or updates a context's streams, refusing to change the
//!   partition count of an existing log.
//! - [`EventLog::check_durability`] refuses a server or stream setup that could lose acknowledged
//!   writes.
//! - [`EventLog::append`] stores a commit with optimistic concurrency and deduplication.
//! - [`EventLog::load`] reads one aggregate; [`EventLog::follow`] replays a context into a
//!   [`Projection`] and then follows the live tail.
//! - [`EventLog::consume`] runs a durable consumer for side effects, with dead letters.
//! - [`EventLog::save_snapshot`] and [`EventLog::follow_from_snapshot`] keep start-up time bounded.

mod append;
mod config;
mod consumer;
mod durability;
mod error;
mod follow;
mod kv;
mod log;
mod naming;
mod record;
mod snapshot;
mod tail;
mod trace;

pub use append::{Appended, Expected, NewCommit};
pub use config::{LogConfig, NatsConfig, StorageKind};
pub use consumer::{ConsumerHandle, ConsumerSpec, DEAD_LETTER_STREAM, Delivery, Outcome};
pub use durability::{DurabilityProblem, DurabilityReport, ServerFacts, StreamFacts, assess};
pub use error::{AppendError, LogError};
pub use follow::{Applied, Follower, Projection};
pub use kv::{KvBucket, KvEntry, KvError, KvSpec};
pub use log::EventLog;
pub use naming::{LogContext, partition_of, validate_token};
pub use record::Record;
pub use snapshot::{SNAPSHOT_BUCKET, Snapshottable};
pub use tail::{CursorError, Tail, TailFilter, TailPosition, TailStart};
pub use trace::TraceContext;

/// Re-exported so callers build envelopes without a direct dependency on the generated crate.
pub use yy_proto::eventlog::v1::{Commit, EventEnvelope, event_envelope::Payload};
