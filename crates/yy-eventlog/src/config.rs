use std::time::Duration;

use serde::Deserialize;

/// How to reach NATS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Client URL(s), comma-separated for a cluster.
    pub url: String,
    /// The server's monitoring URL (`http://host:8222`). The durability check reads `/varz` there
    /// to learn whether a single-replica log is synced on every write.
    pub monitor_url: Option<String>,
    /// A `.creds` file (JWT + nkey seed) for authenticated servers.
    pub credentials_file: Option<std::path::PathBuf>,
    /// How long start-up keeps retrying the first connection before giving up, in seconds.
    pub connect_timeout_secs: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            monitor_url: None,
            credentials_file: None,
            connect_timeout_secs: 30,
        }
    }
}

/// Where JetStream keeps a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// On disk. The only setting that can keep the durability promise.
    File,
    /// In memory: lost when the server stops. For throwaway setups only.
    Memory,
}

/// How the log's streams are laid out. Read once at start; the partition count is fixed when a
/// context's streams are first created.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Partitions per context. Changing it for an existing log is refused.
    pub partitions: u32,
    /// Replicas per stream: 1 on a single node (which must then sync every write), 3 in a cluster.
    pub replicas: usize,
    /// File or memory storage.
    pub storage: StorageKind,
    /// How long events are kept, in seconds; 0 keeps them forever.
    pub max_age_secs: u64,
    /// The window in which a retried command (same command id) is recognised and stored once.
    pub duplicate_window_secs: u64,
    /// Start even when the durability check finds that acknowledged writes could be lost.
    pub accept_unsafe_durability: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            partitions: 8,
            replicas: 1,
            storage: StorageKind::File,
            max_age_secs: 0,
            duplicate_window_secs: 120,
            accept_unsafe_durability: false,
        }
    }
}

impl LogConfig {
    /// Checks the values that JetStream would otherwise reject late or misinterpret.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.partitions) {
            return Err(format!("partitions must be 1..=1024, got {}", self.partitions));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replicas must be 1..=5, got {}", self.replicas));
        }
        if self.duplicate_window_secs == 0 {
            return Err("duplicate_window_secs must be at least 1".into());
        }
        if self.max_age_secs != 0 && self.max_age_secs < self.duplicate_window_secs {
            return Err("max_age_secs must be 0 or at least duplicate_window_secs".into());
        }
        Ok(())
    }

    pub(crate) fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_secs)
    }

    pub(crate) fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_secs)
    }
}
