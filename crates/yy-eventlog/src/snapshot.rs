use async_nats::jetstream::kv;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use yy_proto::eventlog::v1::Snapshot;

use crate::error::LogError;
use crate::follow::{Applied, Follower, Projection};
use crate::log::{EventLog, storage_type};
use crate::naming::LogContext;

/// The KV bucket holding projection snapshots, one key per service and context.
pub const SNAPSHOT_BUCKET: &str = "YY_SNAPSHOTS";

/// A projection that can be saved to and restored from a snapshot.
pub trait Snapshottable: Projection + Sized {
    /// The version of the encoding; a stored snapshot of another version is ignored and the
    /// state is rebuilt from the log instead.
    const STATE_VERSION: u32;
    /// Encodes the state.
    fn encode(&self) -> Vec<u8>;
    /// Decodes what [`Snapshottable::encode`] produced.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

impl EventLog {
    async fn snapshot_bucket(&self) -> Result<kv::Store, LogError> {
        self.js
            .create_or_update_key_value(kv::Config {
                bucket: SNAPSHOT_BUCKET.into(),
                description: "Projection snapshots with the log positions they cover".into(),
                history: 1,
                storage: storage_type(self.config.storage),
                num_replicas: self.config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats("open the snapshot bucket", e))
    }

    /// Saves the follower's current state, with the positions it covers, under `key` (such as
    /// `conversation.conv`). Returns the positions saved.
    ///
    /// A snapshot must fit in one NATS message (the server's `max_payload`, 1 MiB by default);
    /// a larger one is refused with an error and start-up keeps replaying from the log.
    pub async fn save_snapshot<P: Snapshottable>(
        &self,
        key: &str,
        follower: &Follower<P>,
    ) -> Result<Vec<u64>, LogError> {
        let (state, sequences) = {
            let applied = follower.read();
            (applied.state.encode(), applied.sequences.clone())
        };
        let snapshot = Snapshot {
            context: follower.context().name().into(),
            partitions: self.config.partitions,
            sequences: sequences.clone(),
            state,
            taken_at: Some(std::time::SystemTime::now().into()),
            state_version: P::STATE_VERSION,
        };
        self.snapshot_bucket()
            .await?
            .put(key, snapshot.encode_to_vec().into())
            .await
            .map_err(|e| LogError::nats(format!("save snapshot {key}"), e))?;
        Ok(sequences)
    }

    /// Loads the snapshot under `key` if there is one that fits this context, partition count and
    /// state version.
    pub async fn load_snapshot<P: Snapshottable>(
        &self,
        key: &str,
        context: LogContext,
    ) -> Result<Option<Applied<P>>, LogError> {
        let Some(bytes) = self
            .snapshot_bucket()
            .await?
            .get(key)
            .await
            .map_err(|e| LogError::nats(format!("load snapshot {key}"), e))?
        else {
            return Ok(None);
        };
        let snapshot = match Snapshot::decode(bytes) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(%error, key, "ignoring an unreadable snapshot");
                return Ok(None);
            }
        };
        let fits = snapshot.context == context.name()
            && snapshot.partitions == self.config.partitions
            && snapshot.sequences.len() == self.config.partitions as usize
            && snapshot.state_version == P::STATE_VERSION;
        if !fits {
            tracing::info!(key, "ignoring a snapshot of another layout or version");
            return Ok(None);
        }
        match P::decode(&snapshot.state) {
            Ok(state) => Ok(Some(Applied {
                state,
                sequences: snapshot.sequences,
                commits: 0,
            })),
            Err(error) => {
                tracing::warn!(%error, key, "ignoring a snapshot whose state cannot be decoded");
                Ok(None)
            }
        }
    }

    /// Starts from the snapshot under `key` when a usable one exists (else from `empty`), then
    /// replays the log after it and follows the tail: start-up reads only recent history.
    pub async fn follow_from_snapshot<P: Snapshottable>(
        &self,
        key: &str,
        context: LogContext,
        empty: P,
        shutdown: CancellationToken,
    ) -> Result<Follower<P>, LogError> {
        match self.load_snapshot::<P>(key, context).await? {
            Some(applied) => {
                self.follow_from(context, applied.state, applied.sequences, shutdown)
                    .await
            }
            None => self.follow(context, empty, shutdown).await,
        }
    }
}
