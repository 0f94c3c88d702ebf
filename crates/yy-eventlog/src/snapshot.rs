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

/// The largest state kept inline, and the size of each chunk of a larger one: well under the
/// server's default `max_payload` (1 MiB), headers and framing included.
const CHUNK_BYTES: usize = 512 * 1024;

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

fn chunk_key(key: &str, generation: &str, index: usize) -> String {
    format!("{key}.{generation}.{index}")
}

/// The snapshot header under `key`, if there is a readable one.
async fn read_header(bucket: &kv::Store, key: &str) -> Option<Snapshot> {
    let bytes = match bucket.get(key).await {
        Ok(bytes) => bytes?,
        Err(error) => {
            tracing::warn!(%error, key, "cannot read a snapshot");
            return None;
        }
    };
    match Snapshot::decode(bytes) {
        Ok(snapshot) => Some(snapshot),
        Err(error) => {
            tracing::warn!(%error, key, "ignoring an unreadable snapshot");
            None
        }
    }
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
    /// A state larger than one NATS message is stored in chunks of a new generation first and
    /// then named by the header under `key`, so a reader sees either the old snapshot or the new
    /// one, never a mix; the previous generation's chunks are removed afterwards.
    pub async fn save_snapshot<P: Snapshottable>(
        &self,
        key: &str,
        follower: &Follower<P>,
    ) -> Result<Vec<u64>, LogError> {
        let (state, sequences) = {
            let applied = follower.read();
            (applied.state.encode(), applied.sequences.clone())
        };
        let bucket = self.snapshot_bucket().await?;
        let previous = read_header(&bucket, key).await;
        let mut snapshot = Snapshot {
            context: follower.context().name().into(),
            partitions: self.config.partitions,
            sequences: sequences.clone(),
            state: Vec::new(),
            taken_at: Some(std::time::SystemTime::now().into()),
            state_version: P::STATE_VERSION,
            chunk_count: 0,
            generation: String::new(),
        };
        if state.len() <= CHUNK_BYTES {
            snapshot.state = state;
        } else {
            snapshot.generation = uuid::Uuid::now_v7().simple().to_string();
            for (i, chunk) in state.chunks(CHUNK_BYTES).enumerate() {
                bucket
                    .put(
                        chunk_key(key, &snapshot.generation, i),
                        bytes::Bytes::copy_from_slice(chunk),
                    )
                    .await
                    .map_err(|e| LogError::nats(format!("save snapshot {key} chunk {i}"), e))?;
                snapshot.chunk_count += 1;
            }
        }
        bucket
            .put(key, snapshot.encode_to_vec().into())
            .await
            .map_err(|e| LogError::nats(format!("save snapshot {key}"), e))?;
        if let Some(previous) = previous {
            for i in 0..previous.chunk_count as usize {
                // Left-over chunks cost only space: a failure here must not fail the snapshot.
                if let Err(error) = bucket.purge(chunk_key(key, &previous.generation, i)).await {
                    tracing::warn!(%error, key, "an old snapshot chunk was not removed");
                }
            }
        }
        Ok(sequences)
    }

    /// Loads the snapshot under `key` if there is one that fits this context, partition count and
    /// state version.
    pub async fn load_snapshot<P: Snapshottable>(
        &self,
        key: &str,
        context: LogContext,
    ) -> Result<Option<Applied<P>>, LogError> {
        let bucket = self.snapshot_bucket().await?;
        let Some(mut snapshot) = read_header(&bucket, key).await else {
            return Ok(None);
        };
        let fits = snapshot.context == context.name()
            && snapshot.partitions == self.config.partitions
            && snapshot.sequences.len() == self.config.partitions as usize
            && snapshot.state_version == P::STATE_VERSION;
        if !fits {
            tracing::info!(key, "ignoring a snapshot of another layout or version");
            return Ok(None);
        }
        if snapshot.chunk_count > 0 {
            let mut state = Vec::with_capacity(snapshot.chunk_count as usize * CHUNK_BYTES);
            for i in 0..snapshot.chunk_count as usize {
                match bucket.get(chunk_key(key, &snapshot.generation, i)).await {
                    Ok(Some(chunk)) => state.extend_from_slice(&chunk),
                    Ok(None) => {
                        tracing::warn!(key, chunk = i, "ignoring a snapshot with a missing chunk");
                        return Ok(None);
                    }
                    Err(e) => return Err(LogError::nats(format!("load snapshot {key} chunk {i}"), e)),
                }
            }
            snapshot.state = state;
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
