use std::fmt;
use std::time::Duration;

use async_nats::jetstream::stream::StorageType;

use crate::error::LogError;
use crate::log::EventLog;
use crate::naming::LogContext;

/// The oldest nats-server that can sync every write and has the fixes for data loss on crashes.
const MIN_SERVER: (u32, u32) = (2, 12);

/// What the durability check learnt about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    /// The version the server announced, such as "2.15.1".
    pub version: String,
    /// Whether JetStream syncs every write to disk (`sync_interval: always`); `None` when it could
    /// not be learnt (no monitoring URL configured, or it did not answer).
    pub sync_always: Option<bool>,
}

/// What the durability check learnt about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFacts {
    /// The stream's name.
    pub name: String,
    /// True for file storage.
    pub file_storage: bool,
    /// The number of replicas.
    pub replicas: usize,
}

/// A way the setup could lose a write after acknowledging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurabilityProblem {
    /// The server is older than 2.12 (or announced no readable version).
    ServerTooOld {
        /// What it announced.
        version: String,
    },
    /// A stream lives in memory.
    MemoryStorage {
        /// The stream.
        stream: String,
    },
    /// A stream has fewer than three replicas on a server that does not sync every write, or
    /// whose sync setting is unknown.
    UnsyncedReplicas {
        /// The stream.
        stream: String,
        /// Its replicas.
        replicas: usize,
        /// What is known of the server's sync setting.
        sync_always: Option<bool>,
    },
}

impl fmt::Display for DurabilityProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurabilityProblem::ServerTooOld { version } => write!(
                f,
                "nats-server {version} is older than 2.12: it cannot sync every write and predates fixes for data loss on crashes"
            ),
            DurabilityProblem::MemoryStorage { stream } => {
                write!(
                    f,
                    "stream {stream} uses memory storage: everything in it is lost when the server stops"
                )
            }
            DurabilityProblem::UnsyncedReplicas {
                stream,
                replicas,
                sync_always: Some(false),
            } => write!(
                f,
                "stream {stream} has {replicas} replica(s) and the server does not sync every write: \
                 a crash or power loss can drop acknowledged writes \
                 (run nats-server with `jetstream {{ sync_interval: always }}`, or use 3 replicas in a cluster)"
            ),
            DurabilityProblem::UnsyncedReplicas { stream, replicas, .. } => write!(
                f,
                "stream {stream} has {replicas} replica(s) and whether the server syncs every write is unknown \
                 (set nats.monitor_url so /varz can be read, or use 3 replicas in a cluster)"
            ),
        }
    }
}

/// The outcome of [`EventLog::check_durability`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurabilityReport {
    /// What was learnt about the server.
    pub server: ServerFacts,
    /// What was learnt about the streams checked.
    pub streams: Vec<StreamFacts>,
    /// Every problem found; empty for a safe setup.
    pub problems: Vec<DurabilityProblem>,
}

/// Judges a setup: the problems that could lose an acknowledged write. Pure, so every rule is
/// tested without a server of each kind.
pub fn assess(server: &ServerFacts, streams: &[StreamFacts]) -> Vec<DurabilityProblem> {
    let mut problems = Vec::new();
    if parse_version(&server.version).is_none_or(|v| v < MIN_SERVER) {
        problems.push(DurabilityProblem::ServerTooOld {
            version: server.version.clone(),
        });
    }
    for stream in streams {
        if !stream.file_storage {
            problems.push(DurabilityProblem::MemoryStorage {
                stream: stream.name.clone(),
            });
        } else if stream.replicas < 3 && server.sync_always != Some(true) {
            problems.push(DurabilityProblem::UnsyncedReplicas {
                stream: stream.name.clone(),
                replicas: stream.replicas,
                sync_always: server.sync_always,
            });
        }
    }
    problems
}

fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl EventLog {
    /// Checks that the server and the streams of `contexts` (provisioned beforehand) keep every
    /// acknowledged write through a crash or power loss: nats-server 2.12+, file storage, and
    /// either three replicas or a server that syncs every write.
    ///
    /// Returns [`LogError::Unsafe`] naming every problem, unless `accept_unsafe_durability` is set,
    /// in which case the problems are logged and returned in the report.
    pub async fn check_durability(&self, contexts: &[LogContext]) -> Result<DurabilityReport, LogError> {
        let server = ServerFacts {
            version: self.client.server_info().version,
            sync_always: self.server_syncs_always().await,
        };
        let mut streams = Vec::new();
        for context in contexts {
            for partition in 0..self.config.partitions {
                let info = self
                    .stream(*context, partition)
                    .await?
                    .get_info()
                    .await
                    .map_err(|e| LogError::nats(format!("read {}", context.stream(partition)), e))?;
                streams.push(StreamFacts {
                    name: info.config.name,
                    file_storage: info.config.storage == StorageType::File,
                    replicas: info.config.num_replicas,
                });
            }
        }
        let problems = assess(&server, &streams);
        if !problems.is_empty() {
            let list = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            if !self.config.accept_unsafe_durability {
                return Err(LogError::Unsafe(format!(
                    "{list}. Fix the setup, or set eventlog.accept_unsafe_durability = true to accept losing acknowledged writes"
                )));
            }
            tracing::warn!(problems = %list, "starting with an unsafe durability setup, as configured");
        }
        Ok(DurabilityReport {
            server,
            streams,
            problems,
        })
    }

    /// Reads `jetstream.config.sync_always` from the server's monitoring endpoint.
    async fn server_syncs_always(&self) -> Option<bool> {
        let base = self.monitor_url.as_deref()?;
        let url = format!("{}/varz", base.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let varz: serde_json::Value = match client.get(&url).send().await.and_then(|r| r.error_for_status()) {
            Ok(response) => response.json().await.ok()?,
            Err(error) => {
                tracing::warn!(%error, %url, "cannot read the server's sync setting");
                return None;
            }
        };
        let config = varz.get("jetstream")?.get("config")?;
        // The server omits `sync_always` when it is false.
        Some(
            config
                .get("sync_always")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str, sync_always: Option<bool>) -> ServerFacts {
        ServerFacts {
            version: version.into(),
            sync_always,
        }
    }

    fn stream(file_storage: bool, replicas: usize) -> StreamFacts {
        StreamFacts {
            name: "YY_CONV_0".into(),
            file_storage,
            replicas,
        }
    }

    #[test]
    fn safe_setups_pass() {
        assert!(assess(&server("2.12.0", Some(true)), &[stream(true, 1)]).is_empty());
        assert!(assess(&server("2.15.1", None), &[stream(true, 3)]).is_empty());
        assert!(assess(&server("3.0.0", Some(false)), &[stream(true, 5)]).is_empty());
    }

    #[test]
    fn old_or_unreadable_server_is_refused() {
        for version in ["2.9.10", "2.11.9", "", "unknown"] {
            assert_eq!(
                assess(&server(version, Some(true)), &[stream(true, 3)]),
                vec![DurabilityProblem::ServerTooOld {
                    version: version.into()
                }],
                "{version}"
            );
        }
    }

    #[test]
    fn memory_storage_is_refused_even_replicated() {
        assert!(matches!(
            assess(&server("2.12.1", Some(true)), &[stream(false, 3)])[..],
            [DurabilityProblem::MemoryStorage { .. }]
        ));
    }

    #[test]
    fn single_replica_needs_sync_always() {
        for sync in [Some(false), None] {
            let problems = assess(&server("2.12.1", sync), &[stream(true, 1), stream(true, 2)]);
            assert_eq!(problems.len(), 2, "{sync:?}");
            assert!(problems[0].to_string().contains("YY_CONV_0"));
        }
    }
}
