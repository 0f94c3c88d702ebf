//! Small key-value buckets beside the log, for state that is not an event: records that expire
//! (such as idempotency keys) and compare-and-set claims.
//!
//! A bucket is a JetStream KV bucket with the log's storage and replica settings, so it is as
//! durable as the log itself. Every write reports the entry's new *revision*; conditional writes
//! ([`KvBucket::create`], [`KvBucket::update`], [`KvBucket::delete`] with a revision) let
//! concurrent writers settle who won without a lock.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use thiserror::Error;

use crate::error::LogError;
use crate::log::{EventLog, storage_type};

/// The longest key accepted, in bytes.
const MAX_KEY_LEN: usize = 512;

/// How to open a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSpec {
    /// The bucket's name: 1-64 ASCII letters, digits, `_` or `-` (such as `YY_IDEMPOTENCY`).
    pub bucket: String,
    /// What the bucket holds, for operators.
    pub description: String,
    /// How long an entry lives after its last write; zero keeps entries until deleted.
    pub ttl: Duration,
}

/// An entry read from a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The stored value.
    pub value: Bytes,
    /// The revision of this value; pass it to [`KvBucket::update`] or [`KvBucket::delete`] to
    /// change the entry only if nobody changed it since.
    pub revision: u64,
}

/// Why a bucket operation failed.
#[derive(Debug, Error)]
pub enum KvError {
    /// A key that the bucket cannot hold.
    #[error(
        "invalid key {0:?}: use 1-{MAX_KEY_LEN} ASCII letters, digits, '-', '_', '=' or '/', in tokens separated by '.'"
    )]
    InvalidKey(String),
    /// The write's condition did not hold: [`KvBucket::create`] found the key present, or
    /// [`KvBucket::update`] / [`KvBucket::delete`] found another revision than the one expected.
    #[error("the entry {key} was written concurrently")]
    Conflict {
        /// The key.
        key: String,
    },
    /// The bucket cannot be reached or refused the operation.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A key-value bucket. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct KvBucket {
    store: kv::Store,
    name: String,
}

impl std::fmt::Debug for KvBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvBucket").field("name", &self.name).finish()
    }
}

impl EventLog {
    /// Creates the bucket described by `spec`, or brings an existing one's TTL, storage and
    /// replicas in line with it and the log's config. Idempotent; every entry keeps only its
    /// latest value.
    pub async fn kv_bucket(&self, spec: &KvSpec) -> Result<KvBucket, LogError> {
        let valid_name = !spec.bucket.is_empty()
            && spec.bucket.len() <= 64
            && spec
                .bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(LogError::Config(format!(
                "KV bucket name {:?}: use 1-64 ASCII letters, digits, '_' or '-'",
                spec.bucket
            )));
        }
        let store = self
            .js
            .create_or_update_key_value(kv::Config {
                bucket: spec.bucket.clone(),
                description: spec.description.clone(),
                history: 1,
                max_age: spec.ttl,
                storage: storage_type(self.config.storage),
                num_replicas: self.config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::nats(format!("open the KV bucket {}", spec.bucket), e))?;
        Ok(KvBucket {
            store,
            name: spec.bucket.clone(),
        })
    }
}

impl KvBucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry under `key`, if there is one (deleted and expired entries are absent).
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| LogError::nats(format!("read {}/{key}", self.name), e))?;
        Ok(entry.and_then(|entry| match entry.operation {
            kv::Operation::Put => Some(KvEntry {
                value: entry.value,
                revision: entry.revision,
            }),
            kv::Operation::Delete | kv::Operation::Purge => None,
        }))
    }

    /// Stores `value` under `key` only if the key is absent (never written, deleted or
    /// expired). Returns the new revision, or [`KvError::Conflict`] when the key is present: of
    /// several concurrent creators exactly one succeeds.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        check_key(key)?;
        match self.store.create(key, value).await {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(KvError::Conflict { key: key.to_owned() })
            }
            Err(error) => Err(LogError::nats(format!("create {}/{key}", self.name), error).into()),
        }
    }

    /// Replaces the value under `key` only if its current revision is `revision`. Returns the
    /// new revision, or [`KvError::Conflict`] when the entry changed (or vanished) since.
    pub async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        check_key(key)?;
        match self.store.update(key, value, revision).await {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(KvError::Conflict { key: key.to_owned() })
            }
            Err(error) => Err(LogError::nats(format!("update {}/{key}", self.name), error).into()),
        }
    }

    /// Deletes the entry under `key`; with `revision`, only if that is still its current
    /// revision (else [`KvError::Conflict`]). Deleting an absent key without a revision succeeds.
    pub async fn delete(&self, key: &str, revision: Option<u64>) -> Result<(), KvError> {
        check_key(key)?;
        match self.store.delete_expect_revision(key, revision).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(KvError::Conflict { key: key.to_owned() })
            }
            Err(error) => Err(LogError::nats(format!("delete {}/{key}", self.name), error).into()),
        }
    }
}

fn check_key(key: &str) -> Result<(), KvError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'/'))
        });
    if valid {
        Ok(())
    } else {
        Err(KvError::InvalidKey(key.chars().take(MAX_KEY_LEN).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_are_dot_separated_tokens() {
        assert!(check_key("t_acme.3f2a").is_ok());
        assert!(check_key("a/b=c-d_e").is_ok());
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>", "ü", &"k".repeat(513)] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
    }
}
