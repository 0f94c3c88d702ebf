//! The webhook log as the service needs it: every tenant's endpoints, each with its waiting
//! messages, its latest finished ones and its latest attempts. Rebuilt from a snapshot plus the
//! log at start; every timer (the next attempt of each message) is computed from it, so nothing
//! about deliveries lives anywhere but the log.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use yy_eventlog::{Payload, Projection, Record, Snapshottable};
use yy_proto::webhook::v1 as pb;

/// Finished (delivered or failed) messages kept per endpoint, for listing and replay; waiting
/// messages are always kept.
pub const RETAINED_MESSAGES: usize = 2_000;
/// Latest attempts kept per endpoint.
pub const RETAINED_ATTEMPTS: usize = 1_000;
/// Attempts kept per message.
const ATTEMPTS_PER_MESSAGE: usize = 20;

/// Where a message was created: its commit's sequence, partition and place in the commit.
/// Sorting by it is log order within a partition, which is all ordered delivery needs (every
/// message of one aggregate comes from one source partition, through one outbox).
pub type MessageKey = (u64, u32, u32);

/// The aggregate that records an endpoint's deliveries.
pub fn deliveries_aggregate(endpoint_id: &str) -> String {
    format!("dlv_{endpoint_id}")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Webhooks {
    pub tenants: HashMap<String, Tenant>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tenant {
    pub endpoints: BTreeMap<String, Endpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub headers: BTreeMap<String, String>,
    pub rate_limit_per_sec: u32,
    pub ordered: bool,
}

impl Settings {
    pub fn from_proto(s: &pb::EndpointSettings) -> Self {
        Settings {
            url: s.url.clone(),
            event_types: s.event_types.clone(),
            description: s.description.clone(),
            headers: s.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            rate_limit_per_sec: s.rate_limit_per_sec,
            ordered: s.ordered,
        }
    }

    pub fn to_proto(&self) -> pb::EndpointSettings {
        pb::EndpointSettings {
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            description: self.description.clone(),
            headers: self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            rate_limit_per_sec: self.rate_limit_per_sec,
            ordered: self.ordered,
        }
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|f| yy_events::type_matches(f, event_type))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    pub sealed: Vec<u8>,
    /// 0 while current.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Pending,
    Delivered,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub message_id: String,
    pub attempt: u32,
    pub started_at_ms: i64,
    pub status_code: u32,
    pub latency_ms: u32,
    pub response_excerpt: String,
    pub error: String,
    pub delivered: bool,
    pub next_attempt_at_ms: i64,
}

impl Attempt {
    pub fn from_proto(a: &pb::DeliveryAttempted) -> Self {
        Attempt {
            message_id: a.message_id.clone(),
            attempt: a.attempt,
            started_at_ms: a.started_at_ms,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt.clone(),
            error: a.error.clone(),
            delivered: a.delivered,
            next_attempt_at_ms: a.next_attempt_at_ms,
        }
    }

    pub fn to_proto(&self) -> pb::DeliveryAttempted {
        pb::DeliveryAttempted {
            message_id: self.message_id.clone(),
            attempt: self.attempt,
            started_at_ms: self.started_at_ms,
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            response_excerpt: self.response_excerpt.clone(),
            error: self.error.clone(),
            delivered: self.delivered,
            next_attempt_at_ms: self.next_attempt_at_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub key: MessageKey,
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub aggregate_id: String,
    pub payload: String,
    pub created_at_ms: i64,
    pub status: Status,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub history: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub settings: Settings,
    pub enabled: bool,
    pub disabled_reason: String,
    pub deleted: bool,
    pub created_at_ms: i64,
    pub secrets: Vec<Sealed>,
    pub failing_since_ms: i64,
    /// The endpoint aggregate's last sequence: the expectation of its next command.
    pub sequence: u64,
    #[serde(with = "as_list")]
    pub messages: BTreeMap<MessageKey, Message>,
    pub pending: BTreeSet<MessageKey>,
    pub finished: VecDeque<MessageKey>,
    pub attempts: VecDeque<Attempt>,
    #[serde(skip)]
    index: HashMap<String, MessageKey>,
}

mod as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Message, MessageKey};

    pub fn serialize<S: Serializer>(map: &BTreeMap<MessageKey, Message>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<MessageKey, Message>, D::Error> {
        let list = Vec::<Message>::deserialize(d)?;
        Ok(list.into_iter().map(|m| (m.key, m)).collect())
    }
}

/// A message due for an attempt now.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub payload: String,
    pub attempt: u32,
}

impl Endpoint {
    pub fn message(&self, id: &str) -> Option<&Message> {
        self.messages.get(self.index.get(id)?)
    }

    pub fn is_active(&self) -> bool {
        self.enabled && !self.deleted
    }

    /// Up to `limit` messages due at `now` that are not `in_flight`. With ordered delivery a
    /// message waits behind every earlier waiting message of the same aggregate.
    pub fn due(&self, now: i64, limit: usize, in_flight: &std::collections::HashSet<String>) -> Vec<Due> {
        let mut due = Vec::new();
        let mut blocked: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for key in &self.pending {
            if due.len() >= limit {
                break;
            }
            let Some(message) = self.messages.get(key) else {
                continue;
            };
            if self.settings.ordered && !blocked.insert(message.aggregate_id.as_str()) {
                continue;
            }
            if message.next_attempt_at_ms <= now && !in_flight.contains(&message.id) {
                due.push(Due {
                    id: message.id.clone(),
                    payload: message.payload.clone(),
                    attempt: message.attempts + 1,
                });
            }
        }
        due
    }

    /// When the soonest waiting message not in flight is due.
    pub fn next_due(&self, in_flight: &std::collections::HashSet<String>) -> Option<i64> {
        self.pending
            .iter()
            .filter_map(|key| self.messages.get(key))
            .filter(|m| !in_flight.contains(&m.id))
            .map(|m| m.next_attempt_at_ms)
            .min()
    }

    fn finish(&mut self, key: MessageKey) {
        self.pending.remove(&key);
        self.finished.push_back(key);
        while self.finished.len() > RETAINED_MESSAGES {
            let Some(old) = self.finished.pop_front() else { break };
            // A replayed message is waiting again: it stays.
            if !self.pending.contains(&old)
                && let Some(message) = self.messages.remove(&old)
            {
                self.index.remove(&message.id);
            }
        }
    }

    fn record_attempt(&mut self, attempt: Attempt) {
        self.attempts.push_back(attempt);
        while self.attempts.len() > RETAINED_ATTEMPTS {
            self.attempts.pop_front();
        }
    }
}

impl Webhooks {
    pub fn tenant(&self, tenant: &str) -> Option<&Tenant> {
        self.tenants.get(tenant)
    }

    pub fn endpoint(&self, tenant: &str, endpoint: &str) -> Option<&Endpoint> {
        self.tenants.get(tenant)?.endpoints.get(endpoint).filter(|e| !e.deleted)
    }

    fn endpoint_mut(&mut self, tenant: &str, endpoint: &str) -> Option<&mut Endpoint> {
        self.tenants.get_mut(tenant)?.endpoints.get_mut(endpoint)
    }

    fn apply_event(&mut self, record: &Record, index: u32, payload: &Payload) {
        let tenant = record.tenant_id.as_str();
        let sequence = record.sequence;
        match payload {
            Payload::WebhookEndpointCreated(e) => {
                let endpoints = &mut self.tenants.entry(tenant.to_owned()).or_default().endpoints;
                endpoints.entry(e.endpoint_id.clone()).or_insert_with(|| Endpoint {
                    id: e.endpoint_id.clone(),
                    settings: Settings::from_proto(e.settings.as_ref().unwrap_or(&pb::EndpointSettings::default())),
                    enabled: e.enabled,
                    disabled_reason: if e.enabled { String::new() } else { "requested".into() },
                    deleted: false,
                    created_at_ms: e.created_at_ms,
                    secrets: e
                        .secret
                        .iter()
                        .map(|s| Sealed {
                            sealed: s.sealed.clone(),
                            expires_at_ms: 0,
                        })
                        .collect(),
                    failing_since_ms: 0,
                    sequence,
                    messages: BTreeMap::new(),
                    pending: BTreeSet::new(),
                    finished: VecDeque::new(),
                    attempts: VecDeque::new(),
                    index: HashMap::new(),
                });
            }
            Payload::WebhookEndpointUpdated(e) => {
                if let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) {
                    endpoint.settings =
                        Settings::from_proto(e.settings.as_ref().unwrap_or(&pb::EndpointSettings::default()));
                    endpoint.sequence = sequence;
                }
            }
            Payload::WebhookEndpointSecretRotated(e) => {
                if let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) {
                    for old in endpoint.secrets.iter_mut().filter(|s| s.expires_at_ms == 0) {
                        old.expires_at_ms = e.previous_expires_at_ms;
                    }
                    // Secrets that stopped signing before this rotation are of no more use.
                    let rotated_at = e.previous_expires_at_ms - crate::endpoints::ROTATION_OVERLAP_MS;
                    endpoint
                        .secrets
                        .retain(|s| s.expires_at_ms == 0 || s.expires_at_ms > rotated_at);
                    if let Some(secret) = &e.secret {
                        endpoint.secrets.push(Sealed {
                            sealed: secret.sealed.clone(),
                            expires_at_ms: 0,
                        });
                    }
                    endpoint.sequence = sequence;
                }
            }
            Payload::WebhookEndpointEnabled(e) => {
                if let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) {
                    endpoint.enabled = true;
                    endpoint.disabled_reason.clear();
                    endpoint.failing_since_ms = 0;
                    endpoint.sequence = sequence;
                }
            }
            Payload::WebhookEndpointDisabled(e) => {
                if let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) {
                    endpoint.enabled = false;
                    endpoint.disabled_reason = e.reason.clone();
                    endpoint.sequence = sequence;
                }
            }
            Payload::WebhookEndpointDeleted(e) => {
                if let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) {
                    endpoint.deleted = true;
                    endpoint.enabled = false;
                    endpoint.messages.clear();
                    endpoint.pending.clear();
                    endpoint.finished.clear();
                    endpoint.attempts.clear();
                    endpoint.index.clear();
                    endpoint.sequence = sequence;
                }
            }
            Payload::WebhookMessageEnqueued(e) => {
                let Some(endpoint) = self.endpoint_mut(tenant, &e.endpoint_id) else {
                    return;
                };
                if endpoint.deleted || endpoint.index.contains_key(&e.message_id) {
                    return;
                }
                let key = (sequence, record.partition, index);
                endpoint.index.insert(e.message_id.clone(), key);
                endpoint.pending.insert(key);
                endpoint.messages.insert(
                    key,
                    Message {
                        key,
                        id: e.message_id.clone(),
                        event_id: e.event_id.clone(),
                        event_type: e.event_type.clone(),
                        aggregate_id: e.aggregate_id.clone(),
                        payload: e.payload.clone(),
                        created_at_ms: e.created_at_ms,
                        status: Status::Pending,
                        attempts: 0,
                        next_attempt_at_ms: e.created_at_ms,
                        history: Vec::new(),
                    },
                );
            }
            Payload::WebhookDeliveryAttempted(e) => {
                let Some(endpoint_id) = record.aggregate_id.strip_prefix("dlv_") else {
                    return;
                };
                let Some(endpoint) = self.endpoint_mut(tenant, endpoint_id) else {
                    return;
                };
                let attempt = Attempt::from_proto(e);
                if e.delivered {
                    endpoint.failing_since_ms = 0;
                } else if endpoint.failing_since_ms == 0 {
                    endpoint.failing_since_ms = e.started_at_ms.max(1);
                }
                endpoint.record_attempt(attempt.clone());
                let Some(key) = endpoint.index.get(&e.message_id).copied() else {
                    return;
                };
                let Some(message) = endpoint.messages.get_mut(&key) else {
                    return;
                };
                message.history.push(attempt);
                if message.history.len() > ATTEMPTS_PER_MESSAGE {
                    message.history.remove(0);
                }
                // A record of an attempt already counted (written twice across a crash) changes
                // nothing more.
                if message.status != Status::Pending || e.attempt <= message.attempts {
                    return;
                }
                message.attempts = e.attempt;
                if e.delivered {
                    message.status = Status::Delivered;
                    message.next_attempt_at_ms = 0;
                    endpoint.finish(key);
                } else if e.next_attempt_at_ms == 0 {
                    message.status = Status::Failed;
                    message.next_attempt_at_ms = 0;
                    endpoint.finish(key);
                } else {
                    message.next_attempt_at_ms = e.next_attempt_at_ms;
                }
            }
            Payload::WebhookMessagesReplayed(e) => {
                let Some(endpoint_id) = record.aggregate_id.strip_prefix("dlv_") else {
                    return;
                };
                let Some(endpoint) = self.endpoint_mut(tenant, endpoint_id) else {
                    return;
                };
                for id in &e.message_ids {
                    let Some(key) = endpoint.index.get(id).copied() else {
                        continue;
                    };
                    let Some(message) = endpoint.messages.get_mut(&key) else {
                        continue;
                    };
                    message.status = Status::Pending;
                    message.next_attempt_at_ms = e.requested_at_ms;
                    endpoint.pending.insert(key);
                    endpoint.finished.retain(|k| *k != key);
                }
            }
            _ => {}
        }
    }
}

impl Projection for Webhooks {
    fn apply(&mut self, record: &Record) {
        for (index, envelope) in record.commit.events.iter().enumerate() {
            if let Some(payload) = &envelope.payload {
                self.apply_event(record, index as u32, payload);
            }
        }
    }
}

impl Snapshottable for Webhooks {
    const STATE_VERSION: u32 = 1;

    fn encode(&self) -> Vec<u8> {
        // Strings, numbers and byte lists only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut state: Webhooks = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for endpoint in state.tenants.values_mut().flat_map(|t| t.endpoints.values_mut()) {
            endpoint.index = endpoint.messages.values().map(|m| (m.id.clone(), m.key)).collect();
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use yy_eventlog::{Commit, EventEnvelope};

    use super::*;

    const TENANT: &str = "ten_1";

    fn record(aggregate: &str, sequence: u64, payloads: Vec<Payload>) -> Record {
        Record {
            partition: 1,
            sequence,
            tenant_id: TENANT.into(),
            aggregate_id: aggregate.into(),
            commit: Commit {
                command_id: format!("c{sequence}"),
                events: payloads
                    .into_iter()
                    .map(|p| EventEnvelope {
                        payload: Some(p),
                        ..Default::default()
                    })
                    .collect(),
            },
            trace: None,
        }
    }

    fn created(ordered: bool) -> Payload {
        Payload::WebhookEndpointCreated(pb::EndpointCreated {
            endpoint_id: "whk_1".into(),
            settings: Some(pb::EndpointSettings {
                url: "https://example.com/hook".into(),
                event_types: vec!["*".into()],
                ordered,
                ..Default::default()
            }),
            enabled: true,
            secret: Some(pb::SealedSecret::default()),
            created_at_ms: 1_000,
        })
    }

    fn enqueued(id: &str, aggregate: &str) -> Payload {
        Payload::WebhookMessageEnqueued(pb::MessageEnqueued {
            message_id: id.into(),
            endpoint_id: "whk_1".into(),
            event_id: format!("evt-{id}"),
            event_type: "message.created".into(),
            aggregate_id: aggregate.into(),
            payload: "{}".into(),
            created_at_ms: 2_000,
        })
    }

    fn attempted(id: &str, attempt: u32, delivered: bool, next: i64) -> Payload {
        Payload::WebhookDeliveryAttempted(pb::DeliveryAttempted {
            message_id: id.into(),
            attempt,
            started_at_ms: 3_000,
            status_code: if delivered { 200 } else { 500 },
            delivered,
            next_attempt_at_ms: next,
            ..Default::default()
        })
    }

    fn given(ordered: bool, history: Vec<(&str, Vec<Payload>)>) -> Webhooks {
        let mut state = Webhooks::default();
        state.apply(&record("whk_1", 1, vec![created(ordered)]));
        for (i, (aggregate, payloads)) in history.into_iter().enumerate() {
            state.apply(&record(aggregate, i as u64 + 2, payloads));
        }
        state
    }

    fn endpoint(state: &Webhooks) -> &Endpoint {
        state.endpoint(TENANT, "whk_1").expect("endpoint")
    }

    fn due_ids(state: &Webhooks, now: i64) -> Vec<String> {
        endpoint(state)
            .due(now, 10, &HashSet::new())
            .into_iter()
            .map(|d| d.id)
            .collect()
    }

    #[test]
    fn a_message_is_due_at_once_and_a_repeat_of_it_changes_nothing() {
        let state = given(
            false,
            vec![
                ("out_conv_0", vec![enqueued("msg_a", "conv_1")]),
                ("out_conv_0", vec![enqueued("msg_a", "conv_1")]),
            ],
        );
        assert_eq!(due_ids(&state, 2_000), ["msg_a"]);
        assert_eq!(endpoint(&state).pending.len(), 1);
        assert_eq!(endpoint(&state).due(2_000, 10, &HashSet::new())[0].attempt, 1);
    }

    #[test]
    fn a_failed_attempt_schedules_the_next_and_a_success_finishes_it() {
        let state = given(
            false,
            vec![
                ("out_conv_0", vec![enqueued("msg_a", "conv_1")]),
                ("dlv_whk_1", vec![attempted("msg_a", 1, false, 8_000)]),
            ],
        );
        assert!(due_ids(&state, 7_999).is_empty());
        assert_eq!(due_ids(&state, 8_000), ["msg_a"]);
        assert_eq!(endpoint(&state).next_due(&HashSet::new()), Some(8_000));
        assert_eq!(endpoint(&state).failing_since_ms, 3_000);

        let mut state = state;
        state.apply(&record("dlv_whk_1", 10, vec![attempted("msg_a", 2, true, 0)]));
        let e = endpoint(&state);
        let message = e.message("msg_a").expect("kept");
        assert_eq!(
            (message.status, message.attempts, message.history.len()),
            (Status::Delivered, 2, 2)
        );
        assert!(e.pending.is_empty() && e.failing_since_ms == 0);
        // A record of the first attempt written again changes nothing.
        state.apply(&record("dlv_whk_1", 11, vec![attempted("msg_a", 1, false, 9_000)]));
        assert_eq!(
            endpoint(&state).message("msg_a").expect("kept").status,
            Status::Delivered
        );
    }

    #[test]
    fn the_last_failure_fails_the_message_and_a_replay_puts_it_back() {
        let mut state = given(
            false,
            vec![
                ("out_conv_0", vec![enqueued("msg_a", "conv_1")]),
                ("dlv_whk_1", vec![attempted("msg_a", 1, false, 0)]),
            ],
        );
        assert_eq!(endpoint(&state).message("msg_a").expect("kept").status, Status::Failed);
        assert!(due_ids(&state, i64::MAX).is_empty());
        state.apply(&record(
            "dlv_whk_1",
            10,
            vec![Payload::WebhookMessagesReplayed(pb::MessagesReplayed {
                message_ids: vec!["msg_a".into(), "msg_unknown".into()],
                requested_at_ms: 20_000,
            })],
        ));
        assert_eq!(due_ids(&state, 20_000), ["msg_a"]);
        assert_eq!(endpoint(&state).due(20_000, 10, &HashSet::new())[0].attempt, 2);
        assert!(endpoint(&state).finished.is_empty());
    }

    #[test]
    fn ordered_endpoints_hold_later_messages_of_an_aggregate_back() {
        let history = vec![(
            "out_conv_0",
            vec![
                enqueued("msg_a", "conv_1"),
                enqueued("msg_b", "conv_1"),
                enqueued("msg_c", "conv_2"),
            ],
        )];
        let ordered = given(true, history.clone());
        assert_eq!(due_ids(&ordered, 2_000), ["msg_a", "msg_c"]);
        // In flight, the first still holds the second back.
        let in_flight: HashSet<String> = ["msg_a".to_owned()].into();
        let due: Vec<String> = endpoint(&ordered)
            .due(2_000, 10, &in_flight)
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(due, ["msg_c"]);
        assert_eq!(due_ids(&given(false, history), 2_000), ["msg_a", "msg_b", "msg_c"]);
    }

    #[test]
    fn finished_messages_beyond_the_retention_are_forgotten() {
        let mut state = given(false, Vec::new());
        let total = RETAINED_MESSAGES + 5;
        for i in 0..total {
            let id = format!("msg_{i}");
            state.apply(&record("out_conv_0", 2 * i as u64 + 2, vec![enqueued(&id, "conv_1")]));
            state.apply(&record("dlv_whk_1", 2 * i as u64 + 3, vec![attempted(&id, 1, true, 0)]));
        }
        let e = endpoint(&state);
        assert_eq!(e.messages.len(), RETAINED_MESSAGES);
        assert!(e.message("msg_0").is_none());
        assert!(e.message(&format!("msg_{}", total - 1)).is_some());
        assert_eq!(e.attempts.len(), RETAINED_ATTEMPTS);
    }

    #[test]
    fn a_snapshot_restores_messages_and_their_index() {
        let state = given(
            false,
            vec![
                (
                    "out_conv_0",
                    vec![enqueued("msg_a", "conv_1"), enqueued("msg_b", "conv_2")],
                ),
                ("dlv_whk_1", vec![attempted("msg_a", 1, false, 8_000)]),
            ],
        );
        let restored = Webhooks::decode(&state.encode()).expect("decode");
        let e = endpoint(&restored);
        assert_eq!(e.message("msg_a").expect("indexed").next_attempt_at_ms, 8_000);
        assert_eq!(due_ids(&restored, 8_000), due_ids(&state, 8_000));
        assert_eq!(e.sequence, 1);
    }

    #[test]
    fn deleting_an_endpoint_drops_its_messages_and_ignores_later_ones() {
        let mut state = given(false, vec![("out_conv_0", vec![enqueued("msg_a", "conv_1")])]);
        state.apply(&record(
            "whk_1",
            10,
            vec![Payload::WebhookEndpointDeleted(pb::EndpointDeleted {
                endpoint_id: "whk_1".into(),
            })],
        ));
        state.apply(&record("out_conv_0", 11, vec![enqueued("msg_b", "conv_1")]));
        assert!(state.endpoint(TENANT, "whk_1").is_none());
        let tombstone = &state.tenant(TENANT).expect("tenant").endpoints["whk_1"];
        assert!(tombstone.deleted && tombstone.messages.is_empty() && tombstone.sequence == 10);
    }
}
