//! Commands on endpoints: decided against the endpoint as the log has it, appended with its last
//! sequence expected, and answered once the state includes them (read-your-writes).

use std::time::Duration;

use tonic::Status;
use yy_eventlog::{
    AppendError, Commit, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, Record,
};
use yy_proto::webhook::v1 as pb;

use crate::errors::{conflict, invalid, not_found, precondition, unavailable};
use crate::fanout::messages_for;
use crate::metrics::Metrics;
use crate::now_ms;
use crate::state::{Endpoint, Webhooks};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;
/// Decisions retried after losing a race, at most.
const MAX_ATTEMPTS: usize = 5;
/// How long a command waits for the state to include its commit.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What an endpoint is asked to do.
#[derive(Debug, Clone)]
pub enum Command {
    Create {
        settings: pb::EndpointSettings,
        enabled: bool,
        sealed: Vec<u8>,
    },
    Update {
        settings: pb::EndpointSettings,
    },
    SetEnabled {
        enabled: bool,
    },
    /// The delivery side gives up on an endpoint; nothing happens when it is disabled already.
    Disable {
        reason: &'static str,
        detail: String,
    },
    Delete,
    Rotate {
        sealed: Vec<u8>,
        previous_expires_at_ms: i64,
    },
}

fn decide(endpoint_id: &str, current: Option<&Endpoint>, command: &Command, now: i64) -> Result<Vec<Payload>, Status> {
    let id = endpoint_id.to_owned();
    let Some(endpoint) = current else {
        return match command {
            Command::Create {
                settings,
                enabled,
                sealed,
            } => Ok(vec![Payload::WebhookEndpointCreated(pb::EndpointCreated {
                endpoint_id: id,
                settings: Some(settings.clone()),
                enabled: *enabled,
                secret: Some(pb::SealedSecret {
                    sealed: sealed.clone(),
                    expires_at_ms: 0,
                }),
                created_at_ms: now,
            })]),
            _ => Err(not_found("endpoint", endpoint_id)),
        };
    };
    let payload = match command {
        // The same create again (the id derives from its command id): nothing new.
        Command::Create { .. } => return Ok(Vec::new()),
        _ if endpoint.deleted => return Err(not_found("endpoint", endpoint_id)),
        Command::Update { settings } => Payload::WebhookEndpointUpdated(pb::EndpointUpdated {
            endpoint_id: id,
            settings: Some(settings.clone()),
        }),
        Command::SetEnabled { enabled: true } if endpoint.enabled => return Ok(Vec::new()),
        Command::SetEnabled { enabled: true } => {
            Payload::WebhookEndpointEnabled(pb::EndpointEnabled { endpoint_id: id })
        }
        Command::SetEnabled { enabled: false } if !endpoint.enabled => return Ok(Vec::new()),
        Command::SetEnabled { enabled: false } => Payload::WebhookEndpointDisabled(pb::EndpointDisabled {
            endpoint_id: id,
            reason: "requested".into(),
            detail: "disabled by its owner".into(),
        }),
        Command::Disable { .. } if !endpoint.enabled => return Ok(Vec::new()),
        Command::Disable { reason, detail } => Payload::WebhookEndpointDisabled(pb::EndpointDisabled {
            endpoint_id: id,
            reason: (*reason).to_owned(),
            detail: detail.clone(),
        }),
        Command::Delete => Payload::WebhookEndpointDeleted(pb::EndpointDeleted { endpoint_id: id }),
        Command::Rotate {
            sealed,
            previous_expires_at_ms,
        } => {
            if endpoint.secrets.iter().filter(|s| s.expires_at_ms > now).count() >= 2 {
                return Err(precondition(
                    "two earlier secrets are still signing; rotate again once the older one expires",
                ));
            }
            Payload::WebhookEndpointSecretRotated(pb::EndpointSecretRotated {
                endpoint_id: id,
                secret: Some(pb::SealedSecret {
                    sealed: sealed.clone(),
                    expires_at_ms: 0,
                }),
                previous_expires_at_ms: *previous_expires_at_ms,
            })
        }
    };
    Ok(vec![payload])
}

/// Builds the envelope of one webhook event.
pub fn envelope(
    tenant: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    command_id: &str,
    payload: Payload,
) -> EventEnvelope {
    EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.to_owned(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        occurred_at: Some(std::time::SystemTime::now().into()),
        causation_id: command_id.to_owned(),
        schema_version: 1,
        payload: Some(payload),
        ..Default::default()
    }
}

/// Runs endpoint commands.
#[derive(Clone)]
pub struct Endpoints {
    log: EventLog,
    state: Follower<Webhooks>,
    metrics: Metrics,
}

impl Endpoints {
    pub fn new(log: EventLog, state: Follower<Webhooks>, metrics: Metrics) -> Self {
        Endpoints { log, state, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn state(&self) -> &Follower<Webhooks> {
        &self.state
    }

    /// The messages that this command's own public events (`webhook.endpoint_disabled`) make
    /// for the tenant's endpoints, recorded in the same commit, so the notice can never be lost
    /// between the change and its messages.
    fn notifications(
        &self,
        tenant: &str,
        endpoint_id: &str,
        command_id: &str,
        events: &[EventEnvelope],
    ) -> Vec<EventEnvelope> {
        let record = Record {
            partition: 0,
            sequence: 0,
            tenant_id: tenant.to_owned(),
            aggregate_id: endpoint_id.to_owned(),
            commit: Commit {
                command_id: command_id.to_owned(),
                events: events.to_vec(),
            },
            trace: None,
        };
        let state = self.state.read();
        let Some(endpoints) = state.state.tenant(tenant) else {
            return Vec::new();
        };
        messages_for(&record, endpoints)
            .0
            .into_iter()
            .map(|p| envelope(tenant, "endpoint", endpoint_id, command_id, p))
            .collect()
    }

    /// Decides and records `command` on the endpoint; answers once the state includes it, with
    /// whether anything was recorded (a command that changes nothing records nothing).
    pub async fn execute(
        &self,
        tenant: &str,
        endpoint_id: &str,
        command_id: &str,
        command: Command,
    ) -> Result<bool, Status> {
        for _ in 0..MAX_ATTEMPTS {
            let (payloads, expected) = {
                let state = self.state.read();
                let current = state.state.tenant(tenant).and_then(|t| t.endpoints.get(endpoint_id));
                let expected = current.map_or(Expected::NoStream, |e| Expected::LastSequence(e.sequence));
                (decide(endpoint_id, current, &command, now_ms())?, expected)
            };
            if payloads.is_empty() {
                return Ok(false);
            }
            let mut events: Vec<EventEnvelope> = payloads
                .into_iter()
                .map(|p| envelope(tenant, "endpoint", endpoint_id, command_id, p))
                .collect();
            events.extend(self.notifications(tenant, endpoint_id, command_id, &events));
            let commit = NewCommit {
                context: LogContext::WEBHOOK,
                tenant_id: tenant.to_owned(),
                aggregate_id: endpoint_id.to_owned(),
                command_id: command_id.to_owned(),
                events,
                trace: None,
            };
            match self.log.append(commit, expected).await {
                Ok(appended) => {
                    let applied = self.state.applied(appended.partition, appended.sequence);
                    return tokio::time::timeout(APPLY_TIMEOUT, applied)
                        .await
                        .map(|()| true)
                        .map_err(|_| unavailable("the endpoint state did not catch up with the log"));
                }
                Err(AppendError::Conflict { .. }) => {
                    // Another writer got there first: wait for the state to include it, then
                    // decide again.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(AppendError::Log(error)) => return Err(unavailable(error)),
                Err(error) => return Err(invalid("endpoint_id", &error.to_string())),
            }
        }
        Err(conflict("the endpoint kept changing concurrently; retry"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(enabled: bool) -> Endpoint {
        let mut state = Webhooks::default();
        let record = yy_eventlog::Record {
            partition: 0,
            sequence: 4,
            tenant_id: "ten_1".into(),
            aggregate_id: "whk_1".into(),
            commit: yy_eventlog::Commit {
                command_id: "c".into(),
                events: decide(
                    "whk_1",
                    None,
                    &Command::Create {
                        settings: pb::EndpointSettings::default(),
                        enabled,
                        sealed: vec![1, 2, 3],
                    },
                    1_000,
                )
                .expect("create")
                .into_iter()
                .map(|p| envelope("ten_1", "endpoint", "whk_1", "c", p))
                .collect(),
            },
            trace: None,
        };
        yy_eventlog::Projection::apply(&mut state, &record);
        state.endpoint("ten_1", "whk_1").expect("created").clone()
    }

    #[test]
    fn created_endpoints_answer_commands_and_repeats_change_nothing() {
        let enabled = endpoint(true);
        assert_eq!(enabled.sequence, 4);
        let create = Command::Create {
            settings: pb::EndpointSettings::default(),
            enabled: true,
            sealed: vec![],
        };
        assert!(
            decide("whk_1", Some(&enabled), &create, 2_000)
                .expect("repeat")
                .is_empty()
        );
        assert!(
            decide("whk_1", Some(&enabled), &Command::SetEnabled { enabled: true }, 2_000)
                .expect("enable")
                .is_empty()
        );
        let disabled =
            decide("whk_1", Some(&enabled), &Command::SetEnabled { enabled: false }, 2_000).expect("disable");
        assert!(matches!(&disabled[..], [Payload::WebhookEndpointDisabled(d)] if d.reason == "requested"));
        let off = endpoint(false);
        assert_eq!(off.disabled_reason, "requested");
        let failing = Command::Disable {
            reason: "failing",
            detail: String::new(),
        };
        assert!(
            decide("whk_1", Some(&off), &failing, 2_000)
                .expect("already off")
                .is_empty()
        );
        let error = decide("whk_2", None, &Command::Delete, 2_000).expect_err("unknown");
        assert_eq!(error.code(), tonic::Code::NotFound);
    }

    #[test]
    fn a_third_live_secret_is_refused() {
        let mut e = endpoint(true);
        let rotate = Command::Rotate {
            sealed: vec![9],
            previous_expires_at_ms: 10_000,
        };
        assert!(decide("whk_1", Some(&e), &rotate, 2_000).is_ok());
        e.secrets[0].expires_at_ms = 10_000;
        e.secrets.push(crate::state::Sealed {
            sealed: vec![4],
            expires_at_ms: 9_000,
        });
        let error = decide("whk_1", Some(&e), &rotate, 2_000).expect_err("too many");
        assert_eq!(error.code(), tonic::Code::FailedPrecondition);
        // Once the older ones expired, rotating works again.
        assert!(decide("whk_1", Some(&e), &rotate, 11_000).is_ok());
    }
}
