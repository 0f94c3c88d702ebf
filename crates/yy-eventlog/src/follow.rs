use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::error::LogError;
use crate::log::EventLog;
use crate::naming::{LogContext, partition_of, validate_token};
use crate::record::Record;

/// In-memory state built by applying commits in log order.
///
/// `apply` must be deterministic and must not fail: the log is the truth, so a commit the
/// projection cannot use is skipped (and counted) rather than stopping the rebuild.
pub trait Projection: Send + Sync + 'static {
    /// Folds one commit into the state.
    fn apply(&mut self, record: &Record);
}

/// A projection together with how far into the log it has been built.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<P> {
    /// The projection.
    pub state: P,
    /// Per partition, the stream sequence of the last commit applied (0 for none).
    pub sequences: Vec<u64>,
    /// Commits applied since this follower started.
    pub commits: u64,
}

/// A projection kept up to date from the log: replayed from the start (or a snapshot) and then
/// following the live tail, one task per partition, until the shutdown token is cancelled.
#[derive(Debug)]
pub struct Follower<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for Follower<P> {
    fn clone(&self) -> Self {
        Follower {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<P> {
    context: LogContext,
    applied: RwLock<Applied<P>>,
    partitions_behind: AtomicUsize,
    partition_caught_up: Vec<AtomicBool>,
    ready: watch::Sender<bool>,
    progress: Notify,
}

impl<P: Projection> Follower<P> {
    /// The context this follower reads.
    pub fn context(&self) -> LogContext {
        self.shared.context
    }

    /// Read access to the state and its position. Hold the guard briefly: appliers wait for it.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied<P>> {
        // A panic inside `apply` poisons the lock; the state is still the last consistent one
        // that panic left, and refusing every later read would turn one bad event into an outage.
        self.shared.applied.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True once every partition has been replayed up to the tail it had when following started.
    pub fn is_caught_up(&self) -> bool {
        *self.shared.ready.borrow()
    }

    /// Waits until [`Follower::is_caught_up`].
    pub async fn caught_up(&self) {
        let mut ready = self.shared.ready.subscribe();
        // The sender lives in `shared`, which `self` keeps alive, so this cannot fail.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Waits until the commit at `sequence` in `partition` has been applied: read-your-writes
    /// after an append.
    pub async fn applied(&self, partition: u32, sequence: u64) {
        loop {
            let notified = self.shared.progress.notified();
            if self
                .read()
                .sequences
                .get(partition as usize)
                .copied()
                .unwrap_or(u64::MAX)
                >= sequence
            {
                return;
            }
            notified.await;
        }
    }
}

impl EventLog {
    /// Reads every commit of one aggregate, in order, and the sequence of its last commit (0 when
    /// it has none): the `Expected::LastSequence` for the next append.
    pub async fn load(
        &self,
        context: LogContext,
        tenant_id: &str,
        aggregate_id: &str,
    ) -> Result<(Vec<Record>, u64), LogError> {
        self.load_after(context, tenant_id, aggregate_id, 0).await
    }

    /// Like [`EventLog::load`], for the commits after stream sequence `after` only.
    pub async fn load_after(
        &self,
        context: LogContext,
        tenant_id: &str,
        aggregate_id: &str,
        after: u64,
    ) -> Result<(Vec<Record>, u64), LogError> {
        validate_token("tenant", tenant_id)?;
        validate_token("aggregate", aggregate_id)?;
        let partition = partition_of(aggregate_id, self.config.partitions);
        let subject = context.subject(partition, tenant_id, aggregate_id);
        let stream = self.stream(context, partition).await?;
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(LogError::nats(format!("load {subject}"), e)),
        };
        if last <= after {
            return Ok((Vec::new(), last));
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats(format!("load {subject}"), e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::nats(format!("load {subject}"), e))?;
        let stream_name = context.stream(partition);
        let mut records = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| LogError::nats(format!("load {subject}"), e))?;
            let info = message.info().map_err(|e| LogError::Nats {
                op: format!("load {subject}"),
                source: e,
            })?;
            let sequence = info.stream_sequence;
            records.push(Record::decode(
                &stream_name,
                &message.subject,
                sequence,
                message.headers.as_ref(),
                &message.payload,
            )?);
            if sequence >= last {
                break;
            }
        }
        Ok((records, last))
    }

    /// Replays the whole context into `initial` and keeps following the live tail until
    /// `shutdown` is cancelled.
    pub async fn follow<P: Projection>(
        &self,
        context: LogContext,
        initial: P,
        shutdown: CancellationToken,
    ) -> Result<Follower<P>, LogError> {
        let start = vec![0; self.config.partitions as usize];
        self.follow_from(context, initial, start, shutdown).await
    }

    /// Like [`EventLog::follow`], for a state that already includes the commits up to
    /// `sequences` (one per partition), such as a snapshot.
    pub(crate) async fn follow_from<P: Projection>(
        &self,
        context: LogContext,
        initial: P,
        sequences: Vec<u64>,
        shutdown: CancellationToken,
    ) -> Result<Follower<P>, LogError> {
        let partitions = self.config.partitions;
        // The tail each partition has now: reaching it means the replay has caught up.
        let mut tails = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let info = self
                .stream(context, partition)
                .await?
                .get_info()
                .await
                .map_err(|e| LogError::nats(format!("read {}", context.stream(partition)), e))?;
            let behind = info.state.messages > 0 && sequences[partition as usize] < info.state.last_sequence;
            tails.push((info.state.last_sequence, behind));
        }
        let behind = tails.iter().filter(|(_, behind)| *behind).count();
        let shared = Arc::new(Shared {
            context,
            applied: RwLock::new(Applied {
                state: initial,
                sequences,
                commits: 0,
            }),
            partitions_behind: AtomicUsize::new(behind),
            partition_caught_up: tails.iter().map(|(_, behind)| AtomicBool::new(!behind)).collect(),
            ready: watch::Sender::new(behind == 0),
            progress: Notify::new(),
        });
        for (partition, (tail, _)) in tails.into_iter().enumerate() {
            let task = PartitionFollower {
                log: self.clone(),
                shared: shared.clone(),
                partition: partition as u32,
                tail,
            };
            tokio::spawn(task.run(shutdown.clone()));
        }
        Ok(Follower { shared })
    }
}

struct PartitionFollower<P> {
    log: EventLog,
    shared: Arc<Shared<P>>,
    partition: u32,
    tail: u64,
}

impl<P: Projection> PartitionFollower<P> {
    async fn run(self, shutdown: CancellationToken) {
        let stream_name = self.shared.context.stream(self.partition);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.follow_once(&stream_name) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, stream = %stream_name, "following the log failed; resuming");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Reads from just after the last applied commit until the consumer fails.
    async fn follow_once(&self, stream_name: &str) -> Result<(), LogError> {
        let next = self.last_applied() + 1;
        let deliver_policy = if next <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence: next }
        };
        let stream = self.log.stream(self.shared.context, self.partition).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats(format!("follow {stream_name}"), e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| LogError::nats(format!("follow {stream_name}"), e))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| LogError::nats(format!("follow {stream_name}"), e))?;
            let info = message.info().map_err(|e| LogError::Nats {
                op: format!("follow {stream_name}"),
                source: e,
            })?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            match Record::decode(
                stream_name,
                &message.subject,
                sequence,
                message.headers.as_ref(),
                &message.payload,
            ) {
                Ok(record) => self.apply(&record),
                Err(error) => {
                    tracing::error!(%error, "skipping a commit that cannot be decoded");
                    self.advance(sequence);
                }
            }
            if pending == 0 || sequence >= self.tail {
                self.mark_caught_up();
            }
        }
        Ok(())
    }

    fn last_applied(&self) -> u64 {
        let applied = self.shared.applied.read().unwrap_or_else(|e| e.into_inner());
        applied.sequences[self.partition as usize]
    }

    fn apply(&self, record: &Record) {
        {
            let mut applied = self.shared.applied.write().unwrap_or_else(|e| e.into_inner());
            let position = &mut applied.sequences[self.partition as usize];
            if record.sequence <= *position {
                return;
            }
            *position = record.sequence;
            applied.commits += 1;
            applied.state.apply(record);
        }
        self.shared.progress.notify_waiters();
    }

    fn advance(&self, sequence: u64) {
        {
            let mut applied = self.shared.applied.write().unwrap_or_else(|e| e.into_inner());
            let position = &mut applied.sequences[self.partition as usize];
            *position = (*position).max(sequence);
        }
        self.shared.progress.notify_waiters();
    }

    fn mark_caught_up(&self) {
        let flag = &self.shared.partition_caught_up[self.partition as usize];
        if !flag.swap(true, Ordering::AcqRel) && self.shared.partitions_behind.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.send_replace(true);
        }
    }
}
