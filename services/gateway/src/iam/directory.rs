//! The IAM projection: tenants, their API keys, and the index that authenticates requests.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use yy_eventlog::{Payload, Projection, Record, Snapshottable};

use super::secrets::HASH_LEN;

/// Tenants and API keys as the IAM log says they are.
///
/// Invariants: every entry of the hash index names a key of a tenant in `tenants`, with the
/// same revocation state; a tenant's `last_sequence` is the stream sequence of the last commit
/// of its aggregate that was applied, which is what the next append to it must expect.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Directory {
    /// By id; ids are UUIDv7-based, so this is creation order.
    tenants: BTreeMap<String, Tenant>,
    /// Rebuilt from `tenants` when a snapshot is decoded, so the two cannot disagree.
    #[serde(skip)]
    by_hash: HashMap<[u8; HASH_LEN], KeyRef>,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tenant {
    pub id: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The stream sequence of the tenant aggregate's last applied commit.
    pub last_sequence: u64,
    /// By id, in issue order.
    pub keys: BTreeMap<String, ApiKey>,
}

/// An API key's metadata; the key itself is never known after it was issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ApiKey {
    pub id: String,
    pub name: String,
    pub display_prefix: String,
    /// Base64 of the key's HMAC.
    pub key_hash: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC; set once revoked.
    pub revoked_at: Option<String>,
}

/// Where a key hash leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRef {
    pub tenant_id: String,
    pub key_id: String,
    pub revoked: bool,
}

impl Directory {
    /// Every tenant, oldest first.
    pub(crate) fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    /// One tenant.
    pub(crate) fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    /// The key with this hash, revoked or not.
    pub(crate) fn key_by_hash(&self, hash: &[u8; HASH_LEN]) -> Option<&KeyRef> {
        self.by_hash.get(hash)
    }

    fn index(&mut self, tenant_id: &str, key: &ApiKey) {
        let Some(hash) = decode_hash(&key.key_hash) else {
            tracing::warn!(tenant_id, key_id = %key.id, "an API key with a malformed hash cannot be used");
            return;
        };
        self.by_hash.insert(
            hash,
            KeyRef {
                tenant_id: tenant_id.to_owned(),
                key_id: key.id.clone(),
                revoked: key.revoked_at.is_some(),
            },
        );
    }
}

impl Projection for Directory {
    fn apply(&mut self, record: &Record) {
        let tenant_id = record.aggregate_id.as_str();
        for event in &record.commit.events {
            let at = event.occurred_at.map(super::rfc3339).unwrap_or_default();
            match &event.payload {
                Some(Payload::TenantCreated(created)) => {
                    self.tenants.entry(tenant_id.to_owned()).or_insert_with(|| Tenant {
                        id: tenant_id.to_owned(),
                        name: created.name.clone(),
                        created_at: at,
                        last_sequence: 0,
                        keys: BTreeMap::new(),
                    });
                }
                Some(Payload::ApiKeyIssued(issued)) => {
                    let Some(tenant) = self.tenants.get_mut(tenant_id) else {
                        tracing::warn!(tenant_id, key_id = %issued.key_id, "skipping a key issued to an unknown tenant");
                        continue;
                    };
                    if tenant.keys.contains_key(&issued.key_id) {
                        continue;
                    }
                    let key = ApiKey {
                        id: issued.key_id.clone(),
                        name: issued.name.clone(),
                        display_prefix: issued.display_prefix.clone(),
                        key_hash: BASE64.encode(&issued.key_hash),
                        created_at: at,
                        revoked_at: None,
                    };
                    tenant.keys.insert(key.id.clone(), key.clone());
                    self.index(tenant_id, &key);
                }
                Some(Payload::ApiKeyRevoked(revoked)) => {
                    let Some(key) = self
                        .tenants
                        .get_mut(tenant_id)
                        .and_then(|t| t.keys.get_mut(&revoked.key_id))
                    else {
                        tracing::warn!(tenant_id, key_id = %revoked.key_id, "skipping the revocation of an unknown key");
                        continue;
                    };
                    if key.revoked_at.is_none() {
                        key.revoked_at = Some(at);
                    }
                    let key = key.clone();
                    self.index(tenant_id, &key);
                }
                // Other contexts' events, and IAM events this version does not know.
                _ => {}
            }
        }
        if let Some(tenant) = self.tenants.get_mut(tenant_id) {
            tenant.last_sequence = tenant.last_sequence.max(record.sequence);
        }
    }
}

impl Snapshottable for Directory {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        // Strings, integers and maps with string keys always serialize; were it ever to fail,
        // the empty snapshot would be refused at decoding and the state rebuilt from the log.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut directory: Directory = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let keys: Vec<(String, ApiKey)> = directory
            .tenants
            .values()
            .flat_map(|t| t.keys.values().map(|k| (t.id.clone(), k.clone())))
            .collect();
        for (tenant_id, key) in keys {
            directory.index(&tenant_id, &key);
        }
        Ok(directory)
    }
}

fn decode_hash(encoded: &str) -> Option<[u8; HASH_LEN]> {
    BASE64.decode(encoded).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use yy_eventlog::{Commit, EventEnvelope};
    use yy_proto::iam::v1::{ApiKeyIssued, ApiKeyRevoked, TenantCreated};

    use super::*;

    fn record(sequence: u64, tenant: &str, payloads: Vec<Payload>) -> Record {
        Record {
            partition: 0,
            sequence,
            tenant_id: tenant.into(),
            aggregate_id: tenant.into(),
            commit: Commit {
                command_id: format!("cmd-{sequence}"),
                events: payloads
                    .into_iter()
                    .map(|payload| EventEnvelope {
                        occurred_at: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000 + sequence as i64,
                            nanos: 0,
                        }),
                        payload: Some(payload),
                        ..Default::default()
                    })
                    .collect(),
            },
            trace: None,
        }
    }

    #[test]
    fn folds_tenants_keys_and_revocations_and_survives_a_snapshot() {
        let hash = [7u8; HASH_LEN];
        let mut directory = Directory::default();
        directory.apply(&record(
            3,
            "ten_a",
            vec![Payload::TenantCreated(TenantCreated { name: "Acme".into() })],
        ));
        directory.apply(&record(
            5,
            "ten_a",
            vec![Payload::ApiKeyIssued(ApiKeyIssued {
                key_id: "key_1".into(),
                name: "backend".into(),
                display_prefix: "yy_abcdefg".into(),
                key_hash: hash.to_vec(),
            })],
        ));
        let tenant = directory.tenant("ten_a").expect("tenant");
        assert_eq!(tenant.name, "Acme");
        assert_eq!(tenant.last_sequence, 5);
        assert_eq!(tenant.created_at, "2023-11-14T22:13:23Z");
        assert!(!directory.key_by_hash(&hash).expect("indexed").revoked);

        let restored = Directory::decode(&directory.encode()).expect("decodes");
        assert_eq!(restored.key_by_hash(&hash), directory.key_by_hash(&hash));

        directory.apply(&record(
            9,
            "ten_a",
            vec![Payload::ApiKeyRevoked(ApiKeyRevoked { key_id: "key_1".into() })],
        ));
        assert!(directory.key_by_hash(&hash).expect("indexed").revoked);
        let key = &directory.tenant("ten_a").expect("tenant").keys["key_1"];
        assert_eq!(key.revoked_at.as_deref(), Some("2023-11-14T22:13:29Z"));
        assert!(
            Directory::decode(&directory.encode())
                .expect("decodes")
                .key_by_hash(&hash)
                .expect("indexed")
                .revoked
        );
    }

    #[test]
    fn ignores_keys_of_unknown_tenants() {
        let mut directory = Directory::default();
        directory.apply(&record(
            1,
            "ten_x",
            vec![Payload::ApiKeyIssued(ApiKeyIssued {
                key_id: "key_1".into(),
                key_hash: vec![1; HASH_LEN],
                ..Default::default()
            })],
        ));
        assert!(directory.key_by_hash(&[1; HASH_LEN]).is_none());
        assert_eq!(directory.tenants().count(), 0);
    }
}
