//! Live delivery: a tenant's or one aggregate's commits as they are appended, for streams to
//! clients (Server-Sent Events, WebSocket), resumable from a cursor.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::Ordered, pull::OrderedConfig};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::LogError;
use crate::log::EventLog;
use crate::naming::{LogContext, partition_of, validate_token};
use crate::record::Record;

/// Records read ahead per tail before reading pauses. Bounded so that a client that reads slowly
/// holds back only its own tail, never anyone else's, and memory per tail stays small.
const TAIL_BUFFER: usize = 64;

/// How long a partition's reader waits before reopening its consumer after a failure.
const REOPEN_DELAY: Duration = Duration::from_millis(500);

/// The longest cursor accepted; far more than any real one (20 digits and a separator per
/// partition), so garbage is refused before it is parsed.
const MAX_CURSOR_LEN: usize = 4096;

/// Which commits a [`Tail`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailFilter {
    /// Every aggregate of one tenant, on every partition.
    Tenant {
        /// The tenant.
        tenant_id: String,
    },
    /// One aggregate of one tenant: one subject in one partition.
    Aggregate {
        /// The tenant.
        tenant_id: String,
        /// The aggregate.
        aggregate_id: String,
    },
}

impl TailFilter {
    /// Every aggregate of `tenant_id`.
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        TailFilter::Tenant {
            tenant_id: tenant_id.into(),
        }
    }

    /// The one aggregate `aggregate_id` of `tenant_id`.
    pub fn aggregate(tenant_id: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        TailFilter::Aggregate {
            tenant_id: tenant_id.into(),
            aggregate_id: aggregate_id.into(),
        }
    }

    /// The tenant whose commits pass.
    pub fn tenant_id(&self) -> &str {
        match self {
            TailFilter::Tenant { tenant_id } | TailFilter::Aggregate { tenant_id, .. } => tenant_id,
        }
    }

    fn validate(&self) -> Result<(), LogError> {
        validate_token("tenant", self.tenant_id())?;
        if let TailFilter::Aggregate { aggregate_id, .. } = self {
            validate_token("aggregate", aggregate_id)?;
        }
        Ok(())
    }

    /// The partitions to read and the subject to read in each.
    fn subjects(&self, context: LogContext, partitions: u32) -> Vec<(u32, String)> {
        match self {
            TailFilter::Tenant { tenant_id } => (0..partitions)
                .map(|p| (p, format!("yy.evt.{}.{p}.{tenant_id}.>", context.name())))
                .collect(),
            TailFilter::Aggregate {
                tenant_id,
                aggregate_id,
            } => {
                let p = partition_of(aggregate_id, partitions);
                vec![(p, context.subject(p, tenant_id, aggregate_id))]
            }
        }
    }
}

/// Where a [`Tail`] starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailStart {
    /// With the commits appended after [`EventLog::tail`] returns: the current end of the log.
    New,
    /// Just after a position: every commit (or the rest of a commit) the position does not cover.
    /// [`TailPosition::beginning`] replays from the start.
    After(TailPosition),
}

/// A point in the log as far as one reader has got: per partition, the stream sequence of the
/// last commit delivered, and whether only the first events of that commit were.
///
/// Positions are exact at event granularity: a reader that stopped in the middle of a commit
/// resumes with the rest of that commit, so nothing is skipped and nothing repeated. A position
/// is always relative to a filter: only commits the filter passes were delivered, and the ones
/// between them in the same stream were never of interest.
///
/// # Cursor encoding
///
/// [`TailPosition::format`] writes a position as a short ASCII string, for an SSE event id or a
/// resume parameter; [`TailPosition::parse`] reads it back for the same filter.
///
/// - A mark is a stream sequence in decimal (`42`), or, when only the first `k` events of that
///   commit were delivered, the sequence, `:` and `k` (`42:1`). `0` means nothing yet.
/// - For [`TailFilter::Aggregate`] the cursor is the one mark of the aggregate's partition:
///   `42`.
/// - For [`TailFilter::Tenant`] it is every partition's mark in partition order, joined by `.`:
///   `0.17.42:1.3` for four partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailPosition {
    marks: Vec<Mark>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Mark {
    /// The last commit delivered, fully or in part; 0 for none.
    sequence: u64,
    /// When the commit at `sequence` was delivered only in part: how many of its first events
    /// were.
    partial: Option<u32>,
}

impl TailPosition {
    /// Before everything: resuming here replays the whole history the filter passes.
    pub fn beginning(partitions: u32) -> Self {
        TailPosition {
            marks: vec![Mark::default(); partitions as usize],
        }
    }

    /// The partition count the position is for.
    pub fn partitions(&self) -> u32 {
        self.marks.len() as u32
    }

    /// The sequence of the last commit delivered in `partition`, fully or in part (0 for none).
    pub fn sequence(&self, partition: u32) -> u64 {
        self.mark(partition).sequence
    }

    /// How many of `record`'s leading events this position has delivered already: all of them
    /// for a commit it has passed, some for the commit it stopped in the middle of, none for a
    /// later one. A reader skips that many before delivering the rest.
    pub fn covered(&self, record: &Record) -> usize {
        let mark = self.mark(record.partition);
        let events = record.commit.events.len();
        match record.sequence.cmp(&mark.sequence) {
            std::cmp::Ordering::Less => events,
            std::cmp::Ordering::Equal => mark.partial.map_or(events, |k| (k as usize).min(events)),
            std::cmp::Ordering::Greater => 0,
        }
    }

    /// The position once the first `events` events of `record` have been delivered too (the
    /// whole commit when `events` is its length or more). Never moves back: a record this
    /// position already covers leaves it as it is.
    pub fn after(&self, record: &Record, events: usize) -> TailPosition {
        let mut next = self.clone();
        if events == 0 || events <= self.covered(record) {
            return next;
        }
        let Some(mark) = next.marks.get_mut(record.partition as usize) else {
            return next;
        };
        let whole = events >= record.commit.events.len();
        *mark = Mark {
            sequence: record.sequence,
            partial: (!whole).then(|| u32::try_from(events).unwrap_or(u32::MAX)),
        };
        next
    }

    /// The cursor for this position under `filter` (see the encoding above).
    pub fn format(&self, filter: &TailFilter) -> String {
        match filter {
            TailFilter::Aggregate { aggregate_id, .. } => {
                self.mark(partition_of(aggregate_id, self.partitions())).to_string()
            }
            TailFilter::Tenant { .. } => self.marks.iter().map(Mark::to_string).collect::<Vec<_>>().join("."),
        }
    }

    /// Reads a cursor [`TailPosition::format`] wrote for `filter` in a log of `partitions`
    /// partitions.
    pub fn parse(cursor: &str, filter: &TailFilter, partitions: u32) -> Result<TailPosition, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::new(format!("longer than {MAX_CURSOR_LEN} characters")));
        }
        let mut position = TailPosition::beginning(partitions);
        match filter {
            TailFilter::Aggregate { aggregate_id, .. } => {
                let partition = partition_of(aggregate_id, partitions);
                position.marks[partition as usize] = Mark::parse(cursor)?;
            }
            TailFilter::Tenant { .. } => {
                let marks = cursor.split('.').map(Mark::parse).collect::<Result<Vec<_>, _>>()?;
                if marks.len() != partitions as usize {
                    return Err(CursorError::new(format!(
                        "it has {} parts; a tenant-wide cursor has one per partition, {partitions}",
                        marks.len()
                    )));
                }
                position.marks = marks;
            }
        }
        Ok(position)
    }

    fn mark(&self, partition: u32) -> Mark {
        self.marks.get(partition as usize).copied().unwrap_or_default()
    }

    /// The first stream sequence to read in `partition`: the partly delivered commit again, or
    /// the one after the last delivered.
    fn first_to_read(&self, partition: u32) -> u64 {
        let mark = self.mark(partition);
        if mark.partial.is_some() {
            mark.sequence
        } else {
            mark.sequence + 1
        }
    }
}

impl Mark {
    fn parse(text: &str) -> Result<Mark, CursorError> {
        let number = |digits: &str, what: &str| {
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CursorError::new(format!("{what} {digits:?} is not a decimal number")));
            }
            digits
                .parse::<u64>()
                .map_err(|_| CursorError::new(format!("{what} {digits:?} is out of range")))
        };
        match text.split_once(':') {
            None => Ok(Mark {
                sequence: number(text, "sequence")?,
                partial: None,
            }),
            Some((sequence, events)) => {
                let sequence = number(sequence, "sequence")?;
                let events = number(events, "event count")?;
                if sequence == 0 || events == 0 {
                    return Err(CursorError::new(format!(
                        "{text:?}: a partly delivered commit has a sequence and an event count of at least 1"
                    )));
                }
                let events =
                    u32::try_from(events).map_err(|_| CursorError::new(format!("{text:?}: too many events")))?;
                Ok(Mark {
                    sequence,
                    partial: Some(events),
                })
            }
        }
    }
}

impl std::fmt::Display for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.partial {
            None => write!(f, "{}", self.sequence),
            Some(events) => write!(f, "{}:{events}", self.sequence),
        }
    }
}

/// A cursor that is not one [`TailPosition::format`] writes for the filter and log at hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: {0}")]
pub struct CursorError(String);

impl CursorError {
    fn new(reason: String) -> Self {
        CursorError(reason)
    }
}

/// The live commits of a [`TailFilter`], as a [`Stream`] of records that never ends on its own:
/// drop it to stop. Dropping it stops its readers and their consumers.
///
/// Records of one partition arrive in log order; records of different partitions are interleaved
/// as they arrive, so ordering holds per aggregate, not across aggregates. An item is an error
/// only for a stored commit that cannot be decoded (skip it and go on); lost connections are
/// recovered from inside, resuming exactly where reading stopped.
#[derive(Debug)]
pub struct Tail {
    start: TailPosition,
    records: mpsc::Receiver<Result<Record, LogError>>,
    _stop: DropGuard,
}

impl Tail {
    /// Where the tail started: the position the first record follows. For [`TailStart::New`] it
    /// is the end of the log when the tail was opened, so a cursor exists before any record.
    pub fn start(&self) -> &TailPosition {
        &self.start
    }
}

impl Stream for Tail {
    type Item = Result<Record, LogError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

impl EventLog {
    /// Follows the commits of `filter` in `context` from `start`, live.
    ///
    /// Every commit appended after this returns is delivered (with [`TailStart::New`] exactly
    /// those). Each partition is read by its own ordered consumer, which the client recreates
    /// after a disconnect; should that fail, the reader reopens it from the last delivered
    /// sequence, so a record is never skipped or repeated.
    ///
    /// Fails at once for ids that cannot be subject tokens, a position for another partition
    /// count, or streams that cannot be read.
    pub async fn tail(&self, context: LogContext, filter: TailFilter, start: TailStart) -> Result<Tail, LogError> {
        filter.validate()?;
        let partitions = self.config.partitions;
        let subjects = filter.subjects(context, partitions);
        let position = match start {
            TailStart::After(position) if position.partitions() == partitions => position,
            TailStart::After(position) => {
                return Err(LogError::Config(format!(
                    "a position for {} partitions cannot be read in a log of {partitions}",
                    position.partitions()
                )));
            }
            TailStart::New => {
                let mut position = TailPosition::beginning(partitions);
                for (partition, _) in &subjects {
                    let stream = context.stream(*partition);
                    let info = self
                        .stream(context, *partition)
                        .await?
                        .get_info()
                        .await
                        .map_err(|e| LogError::nats(format!("read {stream}"), e))?;
                    position.marks[*partition as usize].sequence = info.state.last_sequence;
                }
                position
            }
        };
        let (sender, records) = mpsc::channel(TAIL_BUFFER);
        let stop = CancellationToken::new();
        // Held from here so that a failure below also stops the readers already started.
        let guard = stop.clone().drop_guard();
        for (partition, subject) in subjects {
            let reader = PartitionTail {
                log: self.clone(),
                context,
                partition,
                subject,
                next: position.first_to_read(partition),
            };
            let messages = reader.open().await?;
            tokio::spawn(reader.run(messages, sender.clone(), stop.clone()));
        }
        Ok(Tail {
            start: position,
            records,
            _stop: guard,
        })
    }
}

/// Reads one partition of a tail.
struct PartitionTail {
    log: EventLog,
    context: LogContext,
    partition: u32,
    subject: String,
    /// The first sequence not yet delivered.
    next: u64,
}

impl PartitionTail {
    async fn open(&self) -> Result<Ordered, LogError> {
        let op = || format!("tail {} in {}", self.subject, self.context.stream(self.partition));
        let deliver_policy = if self.next <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: self.next,
            }
        };
        self.log
            .stream(self.context, self.partition)
            .await?
            .create_consumer(OrderedConfig {
                filter_subject: self.subject.clone(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats(op(), e))?
            .messages()
            .await
            .map_err(|e| LogError::nats(op(), e))
    }

    async fn run(
        mut self,
        mut messages: Ordered,
        sender: mpsc::Sender<Result<Record, LogError>>,
        stop: CancellationToken,
    ) {
        let stream_name = self.context.stream(self.partition);
        loop {
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    message = messages.next() => message,
                };
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => {
                        tracing::warn!(%error, subject = %self.subject, "tailing the log failed; reopening");
                        break;
                    }
                    None => break,
                };
                let sequence = match message.info() {
                    Ok(info) => info.stream_sequence,
                    Err(error) => {
                        tracing::warn!(%error, subject = %self.subject, "a message without its position; reopening");
                        break;
                    }
                };
                // A consumer the client recreated before anything was delivered starts over from
                // the beginning of the stream; what precedes the start was never asked for.
                if sequence < self.next {
                    continue;
                }
                self.next = sequence + 1;
                let record = Record::decode(
                    &stream_name,
                    &message.subject,
                    sequence,
                    message.headers.as_ref(),
                    &message.payload,
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    sent = sender.send(record) => if sent.is_err() { return },
                }
            }
            messages = loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(REOPEN_DELAY) => {}
                }
                match self.open().await {
                    Ok(messages) => break messages,
                    Err(error) => tracing::warn!(%error, subject = %self.subject, "reopening a tail failed; retrying"),
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use yy_proto::eventlog::v1::{Commit, EventEnvelope};

    use super::*;

    fn record(partition: u32, sequence: u64, events: usize) -> Record {
        Record {
            partition,
            sequence,
            tenant_id: "t1".into(),
            aggregate_id: "conv_1".into(),
            commit: Commit {
                command_id: format!("c{sequence}"),
                events: vec![EventEnvelope::default(); events],
            },
            trace: None,
        }
    }

    #[test]
    fn tenant_cursors_hold_every_partition() {
        let filter = TailFilter::tenant("t1");
        let position = TailPosition::beginning(4)
            .after(&record(1, 17, 1), 1)
            .after(&record(2, 42, 3), 1)
            .after(&record(3, 3, 2), 2);
        let cursor = position.format(&filter);
        assert_eq!(cursor, "0.17.42:1.3");
        assert_eq!(TailPosition::parse(&cursor, &filter, 4), Ok(position));
        assert_eq!(TailPosition::beginning(4).format(&filter), "0.0.0.0");
    }

    #[test]
    fn aggregate_cursors_are_the_one_sequence() {
        let filter = TailFilter::aggregate("t1", "conv_1");
        let partition = partition_of("conv_1", 8);
        let position = TailPosition::beginning(8).after(&record(partition, 42, 1), 1);
        assert_eq!(position.format(&filter), "42");
        assert_eq!(TailPosition::parse("42", &filter, 8), Ok(position.clone()));
        assert_eq!(position.sequence(partition), 42);
        let partial = TailPosition::beginning(8).after(&record(partition, 42, 2), 1);
        assert_eq!(partial.format(&filter), "42:1");
        assert_eq!(TailPosition::parse("42:1", &filter, 8), Ok(partial));
        assert_eq!(TailPosition::parse("0", &filter, 8), Ok(TailPosition::beginning(8)));
    }

    #[test]
    fn invalid_cursors_are_refused() {
        let tenant = TailFilter::tenant("t1");
        let aggregate = TailFilter::aggregate("t1", "conv_1");
        for bad in [
            "",
            "x",
            "-1",
            "+1",
            "1.5",
            "1:",
            ":1",
            "1:0",
            "0:1",
            "1:2:3",
            " 1",
            "1 ",
            "١",
            "18446744073709551616",
        ] {
            assert!(TailPosition::parse(bad, &aggregate, 4).is_err(), "{bad:?}");
        }
        for bad in ["1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.x", "1.2.3.4:0", ""] {
            assert!(TailPosition::parse(bad, &tenant, 4).is_err(), "{bad:?}");
        }
        let long = "1".repeat(MAX_CURSOR_LEN + 1);
        assert!(TailPosition::parse(&long, &aggregate, 4).is_err());
        let error = TailPosition::parse("1.2", &tenant, 4).expect_err("two parts");
        assert_eq!(
            error.to_string(),
            "invalid cursor: it has 2 parts; a tenant-wide cursor has one per partition, 4"
        );
        assert_eq!(
            TailPosition::parse("18446744073709551615", &aggregate, 4).map(|p| p.format(&aggregate)),
            Ok("18446744073709551615".to_owned())
        );
    }

    #[test]
    fn a_position_covers_what_was_delivered_and_resumes_mid_commit() {
        let start = TailPosition::beginning(2);
        let commit = record(0, 5, 3);
        assert_eq!(start.covered(&commit), 0);
        assert_eq!(start.first_to_read(0), 1);

        let one = start.after(&commit, 1);
        assert_eq!(one.covered(&commit), 1);
        assert_eq!(one.first_to_read(0), 5, "the partly delivered commit is read again");
        let two = one.after(&commit, 2);
        assert_eq!(two.covered(&commit), 2);
        let all = two.after(&commit, 3);
        assert_eq!(all.covered(&commit), 3);
        assert_eq!(all.first_to_read(0), 6);
        assert_eq!(all.after(&commit, usize::MAX), all);

        // Never backwards: an older commit, or fewer events, leave the position as it is.
        assert_eq!(all.after(&record(0, 4, 1), 1), all);
        assert_eq!(all.after(&commit, 1), all);
        assert_eq!(one.after(&commit, 0), one);
        assert_eq!(all.covered(&record(0, 4, 2)), 2);
        assert_eq!(all.covered(&record(0, 9, 2)), 0);

        // Partitions are independent: a partial mark elsewhere survives.
        let other = one.after(&record(1, 7, 1), 1);
        assert_eq!(other.covered(&commit), 1);
        assert_eq!(other.sequence(1), 7);
        assert_eq!(other.format(&TailFilter::tenant("t1")), "5:1.7");
    }
}
