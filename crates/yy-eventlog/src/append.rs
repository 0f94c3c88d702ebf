use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use prost::Message as _;
use yy_proto::eventlog::v1::{Commit, EventEnvelope};

use crate::error::{AppendError, LogError};
use crate::log::EventLog;
use crate::naming::{LogContext, partition_of, validate_token};
use crate::trace::TraceContext;

/// What the writer believes about the aggregate's history, checked atomically by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Append whatever is there: for commands that cannot conflict.
    Any,
    /// The aggregate must not exist yet.
    NoStream,
    /// The aggregate's last commit must be at this stream sequence (from a load or an earlier
    /// append).
    LastSequence(u64),
}

/// A command's events for one aggregate, ready to append.
#[derive(Debug, Clone)]
pub struct NewCommit {
    /// The log context the aggregate belongs to.
    pub context: LogContext,
    /// The tenant the aggregate belongs to.
    pub tenant_id: String,
    /// The aggregate.
    pub aggregate_id: String,
    /// The command's id, unique per command. A retry with the same id (within the duplicate
    /// window) is stored once.
    pub command_id: String,
    /// The events, at least one.
    pub events: Vec<EventEnvelope>,
    /// The trace to record; when `None`, the current span's trace, if any.
    pub trace: Option<TraceContext>,
}

/// Where an appended commit was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The aggregate's partition.
    pub partition: u32,
    /// The commit's stream sequence: the `LastSequence` to expect on the next append.
    pub sequence: u64,
    /// True when the command had already been stored and this append was a harmless retry;
    /// `sequence` is then the sequence of the original.
    pub duplicate: bool,
}

impl EventLog {
    /// Appends a commit. Returns only once the server has acknowledged it, that is, once it is as
    /// durable as the streams' setup makes it (see [`EventLog::check_durability`]).
    pub async fn append(&self, mut commit: NewCommit, expected: Expected) -> Result<Appended, AppendError> {
        validate_token("tenant", &commit.tenant_id)?;
        validate_token("aggregate", &commit.aggregate_id)?;
        if commit.events.is_empty() {
            return Err(AppendError::Empty);
        }
        let partition = partition_of(&commit.aggregate_id, self.config.partitions);
        let subject = commit
            .context
            .subject(partition, &commit.tenant_id, &commit.aggregate_id);
        let trace = commit.trace.take().or_else(TraceContext::current);
        let mut events = std::mem::take(&mut commit.events);
        if let Some(trace) = &trace {
            for event in events.iter_mut().filter(|e| e.traceparent.is_empty()) {
                event.traceparent = trace.traceparent().to_owned();
            }
        }
        let payload = Commit {
            command_id: commit.command_id.clone(),
            events,
        }
        .encode_to_vec();

        let mut headers = async_nats::HeaderMap::new();
        if let Some(trace) = &trace {
            trace.write_headers(&mut headers);
        }
        // Scoped to the aggregate: a command id chosen by one tenant can never suppress another
        // tenant's write that happens to reuse it.
        let message_id = format!("{}/{}/{}", commit.tenant_id, commit.aggregate_id, commit.command_id);
        let mut publish = PublishMessage::build()
            .payload(payload.into())
            .headers(headers)
            .message_id(message_id);
        let expected_sequence = match expected {
            Expected::Any => None,
            Expected::NoStream => Some(0),
            Expected::LastSequence(seq) => Some(seq),
        };
        if let Some(seq) = expected_sequence {
            publish = publish.expected_last_subject_sequence(seq);
        }

        let published = match self.js.send_publish(subject.clone(), publish).await {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        match published {
            Ok(ack) => Ok(Appended {
                partition,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                let expected = expected_sequence.unwrap_or_default();
                self.earlier_attempt(&commit, expected, partition)
                    .await?
                    .ok_or(AppendError::Conflict {
                        aggregate_id: commit.aggregate_id,
                        expected,
                    })
            }
            Err(error) => Err(AppendError::Log(LogError::nats(format!("append to {subject}"), error))),
        }
    }

    /// Finds the same command among the commits after `expected`. The server checks the expected
    /// sequence before deduplicating, so a retry whose first attempt was stored (but whose
    /// acknowledgement was lost) is refused as a conflict; it is a duplicate, not a conflict.
    async fn earlier_attempt(
        &self,
        commit: &NewCommit,
        expected: u64,
        partition: u32,
    ) -> Result<Option<Appended>, LogError> {
        let (newer, _) = self
            .load_after(commit.context, &commit.tenant_id, &commit.aggregate_id, expected)
            .await?;
        Ok(newer
            .into_iter()
            .find(|record| record.commit.command_id == commit.command_id)
            .map(|record| Appended {
                partition,
                sequence: record.sequence,
                duplicate: true,
            }))
    }
}
