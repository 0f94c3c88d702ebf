//! The ticket log as this service keeps it in memory: every tenant's tickets, connectors and
//! SLA policies, rebuilt from a snapshot plus the log, and the one place commands are decided
//! and appended (`Store::execute`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use serde::{Deserialize, Serialize};
use tonic::Status;
use yy_eventlog::{
    AppendError, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, Projection, Record,
    Snapshottable,
};
use yy_proto::ticket::v1 as pb;

use crate::domain::{self, Ticket, millis, timestamp};
use crate::errors;

/// The settings aggregate of each tenant.
pub const SETTINGS_AGGREGATE: &str = "settings";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: String,
    #[serde(with = "proto_bytes")]
    pub config: pb::ConnectorConfigured,
    pub updated_at_ms: i64,
}

impl Connector {
    pub fn is_ticket_system(&self) -> bool {
        self.config.kind == "ticket_system"
    }

    pub fn is_crm(&self) -> bool {
        self.config.kind == "crm"
    }

    pub fn is_kb_feed(&self) -> bool {
        self.config.kind == "kb_feed"
    }
}

/// What the log says of a knowledge-base feed: the entries it owns and its last import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KbFeedState {
    pub owned: BTreeSet<String>,
    pub etag: String,
    pub last_modified: String,
    pub digest: String,
    pub imported_at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tenant {
    pub tickets: HashMap<String, Ticket>,
    pub connectors: BTreeMap<String, Connector>,
    pub sla_minutes: BTreeMap<String, u32>,
    /// `<connector>/<external id>` to our ticket id, for inbound updates.
    pub external_index: HashMap<String, String>,
    /// The last stream sequence of each aggregate: the expectation of its next append.
    pub sequences: HashMap<String, u64>,
    /// Tickets with changes waiting to be sent, so the outbound worker never scans them all.
    pub with_pending: BTreeSet<String>,
    /// Knowledge-base feeds, by connector.
    pub kb_feeds: BTreeMap<String, KbFeedState>,
}

impl Tenant {
    pub fn ticket_by_external(&self, connector_id: &str, external_id: &str) -> Option<&Ticket> {
        self.external_index
            .get(&format!("{connector_id}/{external_id}"))
            .and_then(|id| self.tickets.get(id))
    }

    /// The enabled connectors that tickets created here are sent to.
    pub fn targets(&self) -> Vec<domain::Target> {
        self.connectors
            .values()
            .filter(|c| c.is_ticket_system() && c.config.enabled)
            .filter_map(|c| {
                let settings = c.config.ticket_system.as_ref()?;
                settings.outbound.then(|| domain::Target {
                    connector_id: c.id.clone(),
                    update: settings.update.as_ref().is_some_and(|t| !t.method.is_empty()),
                    comment: settings.comment.as_ref().is_some_and(|t| !t.method.is_empty()),
                })
            })
            .collect()
    }

    /// The enabled CRM connector; the first by id when a tenant configured several.
    pub fn crm(&self) -> Option<&Connector> {
        self.connectors.values().find(|c| c.is_crm() && c.config.enabled)
    }
}

/// Every tenant's part of the ticket log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketLog {
    pub tenants: HashMap<String, Tenant>,
}

impl TicketLog {
    pub fn tenant(&self, tenant: &str) -> Option<&Tenant> {
        self.tenants.get(tenant)
    }
}

impl Projection for TicketLog {
    fn apply(&mut self, record: &Record) {
        let tenant = self.tenants.entry(record.tenant_id.clone()).or_default();
        let aggregate = record.aggregate_id.as_str();
        tenant.sequences.insert(aggregate.to_owned(), record.sequence);
        for event in &record.commit.events {
            let Some(payload) = &event.payload else { continue };
            let at = event.occurred_at.as_ref().map_or(0, millis);
            match payload {
                Payload::TicketConnectorConfigured(config) => {
                    // The validators were for the old URL and filters: the next pull reads the
                    // feed whole, which the import's idempotence makes harmless.
                    if let Some(feed) = tenant.kb_feeds.get_mut(aggregate) {
                        feed.etag.clear();
                        feed.last_modified.clear();
                    }
                    tenant.connectors.insert(
                        aggregate.to_owned(),
                        Connector {
                            id: aggregate.to_owned(),
                            config: config.clone(),
                            updated_at_ms: at,
                        },
                    );
                }
                Payload::TicketConnectorDeleted(_) => {
                    tenant.connectors.remove(aggregate);
                    tenant.kb_feeds.remove(aggregate);
                }
                Payload::TicketKbFeedSynced(synced) => {
                    let feed = tenant.kb_feeds.entry(aggregate.to_owned()).or_default();
                    for id in &synced.removed_ids {
                        feed.owned.remove(id);
                    }
                    feed.owned.extend(synced.added_ids.iter().cloned());
                    if synced.complete {
                        feed.etag.clone_from(&synced.etag);
                        feed.last_modified.clone_from(&synced.last_modified);
                        feed.digest.clone_from(&synced.digest);
                        feed.imported_at_ms = at;
                    }
                }
                Payload::TicketSlaPoliciesSet(set) => {
                    tenant.sla_minutes = set.resolution_minutes.iter().map(|(k, v)| (k.clone(), *v)).collect();
                }
                Payload::TicketSyncSucceeded(done) if !done.external_id.is_empty() => {
                    let ticket = tenant.tickets.entry(aggregate.to_owned()).or_default();
                    let was_create = ticket
                        .pending
                        .iter()
                        .any(|p| p.sync_id == done.sync_id && p.operation == domain::Operation::Create);
                    domain::evolve(ticket, aggregate, at, payload);
                    if was_create {
                        tenant.external_index.insert(
                            format!("{}/{}", done.connector_id, done.external_id),
                            aggregate.to_owned(),
                        );
                    }
                }
                Payload::TicketCreated(_)
                | Payload::TicketUpdated(_)
                | Payload::TicketCommentAdded(_)
                | Payload::TicketConversationLinked(_)
                | Payload::TicketConversationUnlinked(_)
                | Payload::TicketSyncScheduled(_)
                | Payload::TicketSyncSucceeded(_)
                | Payload::TicketSyncFailed(_)
                | Payload::TicketSyncAbandoned(_) => {
                    let ticket = tenant.tickets.entry(aggregate.to_owned()).or_default();
                    domain::evolve(ticket, aggregate, at, payload);
                }
                _ => {}
            }
        }
        if let Some(ticket) = tenant.tickets.get(aggregate) {
            if ticket.pending.is_empty() {
                tenant.with_pending.remove(aggregate);
            } else {
                tenant.with_pending.insert(aggregate.to_owned());
            }
        }
    }
}

impl Snapshottable for TicketLog {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        // Maps of strings, numbers and byte arrays always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Connector configurations are protobuf messages; in a snapshot they are their encoding.
mod proto_bytes {
    use prost::Message as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use yy_proto::ticket::v1::ConnectorConfigured;

    pub fn serialize<S: Serializer>(value: &ConnectorConfigured, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&value.encode_to_vec())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ConnectorConfigured, D::Error> {
        let bytes = Vec::<u8>::deserialize(deserializer)?;
        ConnectorConfigured::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Decides and appends commands against the log's state.
#[derive(Clone)]
pub struct Store {
    log: EventLog,
    follower: Follower<TicketLog>,
    // Striped, so that the set of locks stays bounded whatever the number of aggregates.
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The most times a command is decided again after losing a race to another writer.
const MAX_CONFLICTS: u32 = 5;

impl Store {
    pub fn new(log: EventLog, follower: Follower<TicketLog>) -> Self {
        Store {
            log,
            follower,
            locks: Arc::new((0..256).map(|_| tokio::sync::Mutex::new(())).collect()),
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn follower(&self) -> &Follower<TicketLog> {
        &self.follower
    }

    /// Reads the tenant's state (an empty one when it has none yet).
    pub fn read<T>(&self, tenant: &str, f: impl FnOnce(&Tenant) -> T) -> T {
        let applied = self.follower.read();
        match applied.state.tenant(tenant) {
            Some(t) => f(t),
            None => f(&Tenant::default()),
        }
    }

    /// Decides with `decide` against the aggregate as the log has it, appends the events with the
    /// aggregate's last sequence expected, and returns once the state includes them. Losing a race
    /// decides again, up to five times, then answers ABORTED. Returns false when nothing changed.
    pub async fn execute(
        &self,
        tenant: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        command_id: &str,
        decide: impl Fn(&Tenant) -> Result<Vec<Payload>, Status>,
    ) -> Result<bool, Status> {
        if !self.follower.is_caught_up() {
            return Err(errors::unavailable("the ticket log is still being read"));
        }
        let stripe = yy_eventlog::partition_of(&format!("{tenant}/{aggregate_id}"), self.locks.len() as u32);
        let _turn = self.locks[stripe as usize].lock().await;
        let mut conflicts = 0;
        loop {
            let (payloads, sequence) = self.read(tenant, |t| {
                let sequence = t.sequences.get(aggregate_id).copied().unwrap_or(0);
                decide(t).map(|p| (p, sequence))
            })?;
            if payloads.is_empty() {
                return Ok(false);
            }
            let occurred_at = Some(timestamp(now_ms()));
            let events = payloads
                .into_iter()
                .map(|payload| EventEnvelope {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.to_owned(),
                    aggregate_type: aggregate_type.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    occurred_at,
                    causation_id: command_id.to_owned(),
                    schema_version: 1,
                    payload: Some(payload),
                    ..Default::default()
                })
                .collect();
            let commit = NewCommit {
                context: LogContext::TICKET,
                tenant_id: tenant.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                command_id: command_id.to_owned(),
                events,
                trace: None,
            };
            let expected = if sequence == 0 {
                Expected::NoStream
            } else {
                Expected::LastSequence(sequence)
            };
            match self.log.append(commit, expected).await {
                Ok(appended) => {
                    self.follower.applied(appended.partition, appended.sequence).await;
                    return Ok(!appended.duplicate);
                }
                Err(AppendError::Conflict { .. }) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    // Another writer got there first: wait until its commit is in the state.
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(conflicts))).await;
                }
                Err(AppendError::Conflict { .. }) => {
                    return Err(errors::conflict(&format!(
                        "{aggregate_id} kept changing concurrently; retry"
                    )));
                }
                Err(error) => return Err(errors::unavailable(error)),
            }
        }
    }
}

/// Encodes a connector configuration, for a size check before it is stored.
pub fn encoded_len(config: &pb::ConnectorConfigured) -> usize {
    config.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yy_eventlog::Commit;

    fn record(sequence: u64, aggregate: &str, payloads: Vec<Payload>) -> Record {
        Record {
            partition: 0,
            sequence,
            tenant_id: "t1".into(),
            aggregate_id: aggregate.into(),
            commit: Commit {
                command_id: format!("c{sequence}"),
                events: payloads
                    .into_iter()
                    .map(|payload| EventEnvelope {
                        occurred_at: Some(timestamp(1_000 * sequence as i64)),
                        payload: Some(payload),
                        ..Default::default()
                    })
                    .collect(),
            },
            trace: None,
        }
    }

    #[test]
    fn the_projection_indexes_external_ids_and_pending_work_and_survives_a_snapshot() {
        let mut log = TicketLog::default();
        log.apply(&record(
            1,
            "cnx_1",
            vec![Payload::TicketConnectorConfigured(pb::ConnectorConfigured {
                kind: "ticket_system".into(),
                enabled: true,
                ticket_system: Some(pb::TicketSystemSettings {
                    outbound: true,
                    ..Default::default()
                }),
                ..Default::default()
            })],
        ));
        log.apply(&record(
            2,
            "tkt_1",
            vec![
                Payload::TicketCreated(pb::TicketCreated {
                    subject: "s".into(),
                    priority: "normal".into(),
                    ..Default::default()
                }),
                Payload::TicketSyncScheduled(pb::TicketSyncScheduled {
                    sync_id: "1-1".into(),
                    connector_id: "cnx_1".into(),
                    operation: "create".into(),
                    comment_id: String::new(),
                }),
            ],
        ));
        let tenant = log.tenant("t1").unwrap();
        assert_eq!(tenant.targets().len(), 1);
        assert!(tenant.with_pending.contains("tkt_1"));
        assert_eq!(tenant.sequences.get("tkt_1"), Some(&2));
        log.apply(&record(
            3,
            "tkt_1",
            vec![Payload::TicketSyncSucceeded(pb::TicketSyncSucceeded {
                sync_id: "1-1".into(),
                connector_id: "cnx_1".into(),
                external_id: "ext-7".into(),
                ..Default::default()
            })],
        ));
        let restored = TicketLog::decode(&log.encode()).unwrap();
        assert_eq!(restored, log);
        let tenant = restored.tenant("t1").unwrap();
        assert!(tenant.with_pending.is_empty());
        assert_eq!(
            tenant.ticket_by_external("cnx_1", "ext-7").map(|t| t.id.as_str()),
            Some("tkt_1")
        );
        assert_eq!(tenant.connectors["cnx_1"].config.kind, "ticket_system");
    }
}
