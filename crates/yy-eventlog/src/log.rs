use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::TryStreamExt;

use crate::config::{LogConfig, NatsConfig, StorageKind};
use crate::error::LogError;
use crate::naming::LogContext;

/// Stream metadata key recording the partition count a context was created with.
const PARTITIONS_KEY: &str = "yy.partitions";

/// A connection to the event log. Cheap to clone; clones share the connection.
#[derive(Clone, Debug)]
pub struct EventLog {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) config: Arc<LogConfig>,
    pub(crate) monitor_url: Option<Arc<str>>,
}

impl EventLog {
    /// Connects to NATS, retrying the first connection until `connect_timeout_secs` passes; after
    /// that the client reconnects on its own, forever, whenever the connection drops.
    pub async fn connect(nats: &NatsConfig, config: LogConfig, client_name: &str) -> Result<Self, LogError> {
        config.validate().map_err(LogError::Config)?;
        let servers = nats
            .url
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LogError::Config(format!("nats.url {:?}: {e}", nats.url)))?;
        let deadline = Instant::now() + Duration::from_secs(nats.connect_timeout_secs);
        let mut delay = Duration::from_millis(100);
        loop {
            let mut options = async_nats::ConnectOptions::new()
                .name(client_name)
                .max_reconnects(None)
                .event_callback(|event| async move {
                    match event {
                        async_nats::Event::Connected => tracing::info!("nats connected"),
                        async_nats::Event::Disconnected => tracing::warn!("nats disconnected; reconnecting"),
                        other => tracing::info!(event = %other, "nats event"),
                    }
                });
            if let Some(path) = &nats.credentials_file {
                options = options
                    .credentials_file(path)
                    .await
                    .map_err(|e| LogError::nats(format!("read credentials {}", path.display()), e))?;
            }
            match options.connect(servers.as_slice()).await {
                Ok(client) => return Ok(Self::new(client, config, nats.monitor_url.clone())),
                Err(error) if Instant::now() + delay < deadline => {
                    tracing::warn!(%error, url = %nats.url, "cannot reach nats yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(LogError::nats(format!("connect to {}", nats.url), error)),
            }
        }
    }

    /// Wraps an existing client.
    pub fn new(client: async_nats::Client, config: LogConfig, monitor_url: Option<String>) -> Self {
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .build(client.clone());
        EventLog {
            client,
            js,
            config: Arc::new(config),
            monitor_url: monitor_url.map(Into::into),
        }
    }

    /// The layout settings this log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The underlying NATS client, for plain (non-JetStream) subjects such as request/reply.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Creates the context's partition streams, or brings their limits (max age, duplicate
    /// window, replicas) in line with config. Idempotent.
    ///
    /// Refuses with [`LogError::PartitionCountMismatch`] when streams of the context already exist
    /// with another partition count: aggregates would move partitions and split their histories.
    pub async fn provision(&self, context: LogContext) -> Result<(), LogError> {
        let configured = self.config.partitions;
        if let Some(existing) = self.existing_partitions(context).await?
            && existing != configured
        {
            return Err(LogError::PartitionCountMismatch {
                context: context.name(),
                existing,
                configured,
            });
        }
        for partition in 0..configured {
            let stream_config = self.stream_config(context, partition);
            self.js
                .create_or_update_stream(stream_config)
                .await
                .map_err(|e| LogError::nats(format!("provision stream {}", context.stream(partition)), e))?;
        }
        for partition in 0..configured {
            self.wait_for_leader(context, partition).await?;
        }
        Ok(())
    }

    /// Waits until a replicated stream has elected a leader: until then it refuses writes as if
    /// it did not exist, so provisioning returns only once the log accepts appends.
    async fn wait_for_leader(&self, context: LogContext, partition: u32) -> Result<(), LogError> {
        let name = context.stream(partition);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = self
                .stream(context, partition)
                .await?
                .get_info()
                .await
                .map_err(|e| LogError::nats(format!("read stream {name}"), e))?;
            // A single server reports no cluster: its streams are writable at once.
            let led = info.cluster.is_none_or(|c| c.leader.is_some());
            if led {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LogError::Unavailable(format!(
                    "stream {name} has elected no leader within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stream_config(&self, context: LogContext, partition: u32) -> stream::Config {
        stream::Config {
            name: context.stream(partition),
            description: Some(format!(
                "Yiwaiwai {} events, partition {partition} of {}",
                context.name(),
                self.config.partitions
            )),
            subjects: vec![context.partition_subjects(partition)],
            storage: storage_type(self.config.storage),
            num_replicas: self.config.replicas,
            max_age: if context.is_kept_forever() {
                std::time::Duration::ZERO
            } else {
                self.config.max_age()
            },
            duplicate_window: self.config.duplicate_window(),
            // The log is append-only: history is never edited, only added to.
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            metadata: HashMap::from([(PARTITIONS_KEY.to_owned(), self.config.partitions.to_string())]),
            ..Default::default()
        }
    }

    /// The partition count the context's existing streams were created with, if any exist.
    async fn existing_partitions(&self, context: LogContext) -> Result<Option<u32>, LogError> {
        let prefix = format!("YY_{}_", context.name().to_ascii_uppercase());
        let names: Vec<String> = self
            .js
            .stream_names()
            .try_filter(|name| {
                let partition = name.strip_prefix(&prefix);
                futures::future::ready(partition.is_some_and(|p| p.parse::<u32>().is_ok()))
            })
            .try_collect()
            .await
            .map_err(|e| LogError::nats("list streams", e))?;
        let Some(first) = names.first() else {
            return Ok(None);
        };
        let info = self
            .js
            .get_stream(first)
            .await
            .map_err(|e| LogError::nats(format!("read stream {first}"), e))?
            .get_info()
            .await
            .map_err(|e| LogError::nats(format!("read stream {first}"), e))?;
        let recorded = info.config.metadata.get(PARTITIONS_KEY).and_then(|v| v.parse().ok());
        // Streams without the key predate it; their number is the count.
        Ok(Some(recorded.unwrap_or(names.len() as u32)))
    }

    pub(crate) async fn stream(&self, context: LogContext, partition: u32) -> Result<stream::Stream<()>, LogError> {
        let name = context.stream(partition);
        self.js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| LogError::nats(format!("open stream {name}"), e))
    }
}

pub(crate) fn storage_type(kind: StorageKind) -> stream::StorageType {
    match kind {
        StorageKind::File => stream::StorageType::File,
        StorageKind::Memory => stream::StorageType::Memory,
    }
}
