use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::LogError;
use crate::log::{EventLog, storage_type};
use crate::naming::{LogContext, validate_token};
use crate::record::Record;

/// The stream that keeps dead letters, on subjects `yy.dlq.<consumer>.<context>.<partition>`.
pub const DEAD_LETTER_STREAM: &str = "YY_DLQ";

/// A durable consumer of one log context for side effects (deliveries, calls to external systems).
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The consumer's durable name; its position survives restarts. Letters, digits, `_`, `-`.
    pub name: String,
    /// The context it reads.
    pub context: LogContext,
    /// Deliveries of one commit before it is given up and dead-lettered.
    pub max_deliveries: u32,
    /// How long a delivery may stay unacknowledged before the server redelivers it, such as after
    /// a crash mid-handling.
    pub ack_wait: Duration,
}

/// One delivery of a commit to a consumer's handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The commit.
    pub record: Record,
    /// 1 on the first delivery, counting every redelivery after it.
    pub attempt: u32,
}

/// What the handler made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: never deliver it again.
    Done,
    /// Failed for now: deliver again after `after`, unless the delivery limit is reached, in
    /// which case it is dead-lettered with `reason`.
    Retry {
        /// How long to wait before the next delivery.
        after: Duration,
        /// Why it failed.
        reason: String,
    },
    /// Can never succeed: dead-letter it at once.
    Reject {
        /// Why.
        reason: String,
    },
}

/// The running tasks of a consumer, one per partition.
#[derive(Debug)]
pub struct ConsumerHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl ConsumerHandle {
    /// Waits until every partition's task has stopped (after the shutdown token is cancelled, each
    /// finishes the delivery it is handling first).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl EventLog {
    /// Starts a durable consumer over every partition of `spec.context`, handing each commit to
    /// `handler` one at a time per partition, in log order, until `shutdown` is cancelled.
    ///
    /// Delivery is at least once: a handler must be idempotent on the event ids. A commit that
    /// keeps failing goes to the dead-letter stream after `max_deliveries`, with headers naming
    /// its origin and the reason, and the consumer moves on.
    pub async fn consume<H, Fut>(
        &self,
        spec: ConsumerSpec,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<ConsumerHandle, LogError>
    where
        H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        validate_token("consumer", &spec.name)?;
        self.provision_dead_letters().await?;
        let mut tasks = Vec::new();
        for partition in 0..self.config.partitions {
            let stream = self.stream(spec.context, partition).await?;
            let consumer = stream
                .create_consumer(pull::Config {
                    durable_name: Some(spec.name.clone()),
                    description: Some(format!("side effects of {}", spec.name)),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: spec.ack_wait,
                    // The limit is enforced here, so that a message past it is dead-lettered
                    // rather than silently left behind by the server.
                    max_deliver: -1,
                    num_replicas: self.config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    LogError::nats(
                        format!("create consumer {} on {}", spec.name, spec.context.stream(partition)),
                        e,
                    )
                })?;
            let worker = PartitionWorker {
                log: self.clone(),
                spec: spec.clone(),
                partition,
                handler: handler.clone(),
            };
            tasks.push(tokio::spawn(worker.run(consumer, shutdown.clone())));
        }
        Ok(ConsumerHandle { tasks })
    }

    async fn provision_dead_letters(&self) -> Result<(), LogError> {
        self.js
            .create_or_update_stream(stream::Config {
                name: DEAD_LETTER_STREAM.into(),
                description: Some("Commits that consumers gave up on, with the reason".into()),
                subjects: vec!["yy.dlq.>".into()],
                storage: storage_type(self.config.storage),
                num_replicas: self.config.replicas,
                max_age: self.config.max_age(),
                duplicate_window: self.config.duplicate_window(),
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats("provision the dead-letter stream", e))?;
        Ok(())
    }
}

struct PartitionWorker<H> {
    log: EventLog,
    spec: ConsumerSpec,
    partition: u32,
    handler: H,
}

impl<H, Fut> PartitionWorker<H>
where
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    async fn run(self, consumer: async_nats::jetstream::consumer::PullConsumer, shutdown: CancellationToken) {
        let stream_name = self.spec.context.stream(self.partition);
        loop {
            let mut messages = match consumer.messages().await {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, consumer = %self.spec.name, stream = %stream_name, "cannot pull; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = messages.next() => next,
                };
                match message {
                    Some(Ok(message)) => self.handle(&stream_name, message).await,
                    Some(Err(error)) => {
                        tracing::warn!(%error, consumer = %self.spec.name, stream = %stream_name, "pull failed");
                    }
                    None => break,
                }
            }
        }
    }

    async fn handle(&self, stream_name: &str, message: async_nats::jetstream::Message) {
        let (sequence, attempt) = match message.info() {
            Ok(info) => (info.stream_sequence, u32::try_from(info.delivered).unwrap_or(u32::MAX)),
            Err(error) => {
                tracing::error!(%error, "delivery without JetStream metadata; dropping it");
                return;
            }
        };
        let outcome = match Record::decode(
            stream_name,
            &message.subject,
            sequence,
            message.headers.as_ref(),
            &message.payload,
        ) {
            Ok(record) => (self.handler)(Delivery { record, attempt }).await,
            Err(error) => Outcome::Reject {
                reason: error.to_string(),
            },
        };
        let ack = match outcome {
            Outcome::Done => AckKind::Ack,
            Outcome::Retry { after, .. } if attempt < self.spec.max_deliveries => AckKind::Nak(Some(after)),
            Outcome::Retry { reason, .. } => {
                let reason = format!("gave up after {attempt} deliveries: {reason}");
                match self
                    .dead_letter(stream_name, sequence, attempt, &reason, &message)
                    .await
                {
                    Ok(()) => AckKind::Term,
                    Err(error) => {
                        tracing::error!(%error, "cannot dead-letter; will redeliver");
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    }
                }
            }
            Outcome::Reject { reason } => match self
                .dead_letter(stream_name, sequence, attempt, &reason, &message)
                .await
            {
                Ok(()) => AckKind::Term,
                Err(error) => {
                    tracing::error!(%error, "cannot dead-letter; will redeliver");
                    AckKind::Nak(Some(Duration::from_secs(1)))
                }
            },
        };
        if let Err(error) = message.ack_with(ack).await {
            // The server redelivers after ack_wait; handlers are idempotent, so this only costs time.
            tracing::warn!(%error, consumer = %self.spec.name, sequence, "acknowledgement failed");
        }
    }

    async fn dead_letter(
        &self,
        stream_name: &str,
        sequence: u64,
        attempt: u32,
        reason: &str,
        message: &async_nats::jetstream::Message,
    ) -> Result<(), LogError> {
        tracing::warn!(consumer = %self.spec.name, stream = stream_name, sequence, reason, "dead-lettering a commit");
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert("Yy-Dlq-Stream", stream_name);
        headers.insert("Yy-Dlq-Sequence", sequence.to_string().as_str());
        headers.insert("Yy-Dlq-Subject", message.subject.as_str());
        headers.insert("Yy-Dlq-Deliveries", attempt.to_string().as_str());
        headers.insert("Yy-Dlq-Reason", reason.replace(['\r', '\n'], " ").as_str());
        let subject = format!(
            "yy.dlq.{}.{}.{}",
            self.spec.name,
            self.spec.context.name(),
            self.partition
        );
        let publish = PublishMessage::build()
            .payload(message.payload.clone())
            .headers(headers)
            // A crash between storing the dead letter and terminating the delivery redelivers it;
            // the id makes the second dead letter a duplicate.
            .message_id(format!("{}/{stream_name}/{sequence}", self.spec.name));
        self.log
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| LogError::nats("publish dead letter", e))?
            .await
            .map_err(|e| LogError::nats("publish dead letter", e))?;
        Ok(())
    }
}
