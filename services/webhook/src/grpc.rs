//! The webhook API over gRPC: endpoint commands go through `endpoints`, queries read the state
//! as the log has it.

use std::sync::Arc;

use reqwest::header::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use yy_eventlog::{EventLog, Expected, LogContext, NewCommit, Payload, validate_token};
use yy_proto::webhook::v1 as pb;
use yy_proto::webhook::v1::webhook_service_server::WebhookService;
use yy_runtime::tenant_of;

use crate::delivery::Dispatcher;
use crate::endpoints::{Command, Endpoints, ROTATION_OVERLAP_MS, envelope};
use crate::errors::{invalid, not_found, precondition, unavailable};
use crate::guard::{AddressPolicy, check_registration, parse_url};
use crate::now_ms;
use crate::sealing::Sealer;
use crate::signing::SigningKey;
use crate::state::{Endpoint, Status as MessageStatus, deliveries_aggregate};

/// Headers an endpoint may not set: the signature's, and what HTTP itself decides.
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];
const MAX_HEADERS: usize = 20;
const MAX_DESCRIPTION_CHARS: usize = 1_000;
const MAX_EVENT_TYPES: usize = 50;
const MAX_RATE_LIMIT: u32 = 10_000;
const MAX_LIST: u32 = 1_000;

/// The webhook API.
#[derive(Clone)]
pub struct Webhook {
    log: EventLog,
    endpoints: Endpoints,
    dispatcher: Dispatcher,
    sealer: Arc<Sealer>,
    policy: Arc<AddressPolicy>,
}

impl Webhook {
    pub fn new(
        log: EventLog,
        endpoints: Endpoints,
        dispatcher: Dispatcher,
        sealer: Arc<Sealer>,
        policy: Arc<AddressPolicy>,
    ) -> Self {
        Webhook {
            log,
            endpoints,
            dispatcher,
            sealer,
            policy,
        }
    }

    fn read<T>(&self, tenant: &str, endpoint_id: &str, f: impl FnOnce(&Endpoint) -> T) -> Result<T, Status> {
        let state = self.endpoints.state().read();
        state
            .state
            .endpoint(tenant, endpoint_id)
            .map(f)
            .ok_or_else(|| not_found("endpoint", endpoint_id))
    }

    fn view(&self, tenant: &str, endpoint_id: &str) -> Result<pb::Endpoint, Status> {
        self.read(tenant, endpoint_id, endpoint_view)
    }

    async fn validate_settings(&self, settings: Option<pb::EndpointSettings>) -> Result<pb::EndpointSettings, Status> {
        let settings = settings.ok_or_else(|| invalid("settings", "required"))?;
        let url = parse_url(settings.url.trim()).map_err(|e| invalid("settings.url", &e))?;
        check_registration(&url, &self.policy)
            .await
            .map_err(|e| invalid("settings.url", &e))?;
        if settings.event_types.is_empty() {
            return Err(invalid(
                "settings.event_types",
                "give at least one event type, such as message.created or conversation.*",
            ));
        }
        if settings.event_types.len() > MAX_EVENT_TYPES {
            return Err(invalid("settings.event_types", "at most 50"));
        }
        for (i, filter) in settings.event_types.iter().enumerate() {
            if filter.contains(',') {
                return Err(invalid(&format!("settings.event_types[{i}]"), "one type per entry"));
            }
            yy_events::TypeFilter::parse(filter).map_err(|e| invalid(&format!("settings.event_types[{i}]"), &e))?;
        }
        if settings.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(invalid("settings.description", "at most 1000 characters"));
        }
        if settings.headers.len() > MAX_HEADERS {
            return Err(invalid("settings.headers", "at most 20 headers"));
        }
        for (name, value) in &settings.headers {
            let field = format!("settings.headers[{name:?}]");
            let parsed = HeaderName::try_from(name.as_str()).map_err(|_| invalid(&field, "not a header name"))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(invalid(&field, "set by the service itself"));
            }
            if value.len() > 4_096 || HeaderValue::from_str(value).is_err() {
                return Err(invalid(
                    &field,
                    "not a header value (visible ASCII, at most 4096 bytes)",
                ));
            }
        }
        if settings.rate_limit_per_sec > MAX_RATE_LIMIT {
            return Err(invalid("settings.rate_limit_per_sec", "at most 10000"));
        }
        Ok(pb::EndpointSettings {
            url: url.to_string(),
            ..settings
        })
    }

    fn signing_key(&self, given: &str) -> Result<SigningKey, Status> {
        if !self.sealer.is_configured() {
            return Err(precondition(
                "webhook.secret_key is not configured, so signing secrets cannot be stored",
            ));
        }
        if given.is_empty() {
            Ok(SigningKey::generate())
        } else {
            SigningKey::parse(given).map_err(|e| invalid("secret", e))
        }
    }

    fn seal(&self, tenant: &str, endpoint_id: &str, key: &SigningKey) -> Result<Vec<u8>, Status> {
        self.sealer
            .seal(tenant, endpoint_id, key)
            .map_err(|e| precondition(&e.to_string()))
    }
}

fn endpoint_id(given: &str) -> Result<&str, Status> {
    if given.is_empty() {
        return Err(invalid("endpoint_id", "required"));
    }
    if !given.starts_with("whk_") || validate_token("endpoint_id", given).is_err() {
        return Err(invalid("endpoint_id", "not an endpoint id (whk_…)"));
    }
    Ok(given)
}

/// A command id from the caller, or a fresh one.
fn command_id(given: &str) -> Result<String, Status> {
    if given.is_empty() {
        return Ok(uuid::Uuid::now_v7().simple().to_string());
    }
    if given.len() <= 128
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(given.to_owned())
    } else {
        Err(invalid("command_id", "at most 128 letters, digits, '-' or '_'"))
    }
}

fn endpoint_view(e: &Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        endpoint_id: e.id.clone(),
        settings: Some(e.settings.to_proto()),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        created_at_ms: e.created_at_ms,
        failing_since_ms: e.failing_since_ms,
        pending_messages: e.pending.len() as u64,
    }
}

fn limit(given: u32) -> Result<usize, Status> {
    match given {
        0 => Ok(100),
        1..=MAX_LIST => Ok(given as usize),
        _ => Err(invalid("limit", "1 to 1000")),
    }
}

#[tonic::async_trait]
impl WebhookService for Webhook {
    async fn create_endpoint(
        &self,
        request: Request<pb::CreateEndpointRequest>,
    ) -> Result<Response<pb::CreateEndpointResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let given_command = !request.command_id.is_empty();
        let command = command_id(&request.command_id)?;
        // Derived from the command id, so a retried create names the same endpoint.
        let id = if given_command {
            let digest = Sha256::digest(format!("{tenant}/{command}"));
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("whk_{hex}")
        } else {
            format!("whk_{}", uuid::Uuid::now_v7().simple())
        };
        if let Ok(existing) = self.view(&tenant, &id) {
            return Ok(Response::new(pb::CreateEndpointResponse {
                endpoint: Some(existing),
                secret: String::new(),
            }));
        }
        let settings = self.validate_settings(request.settings).await?;
        let key = self.signing_key(&request.secret)?;
        let sealed = self.seal(&tenant, &id, &key)?;
        self.endpoints
            .execute(
                &tenant,
                &id,
                &command,
                Command::Create {
                    settings,
                    enabled: request.enabled.unwrap_or(true),
                    sealed,
                },
            )
            .await?;
        self.dispatcher.wake(&tenant, &id);
        Ok(Response::new(pb::CreateEndpointResponse {
            endpoint: Some(self.view(&tenant, &id)?),
            secret: key.to_secret(),
        }))
    }

    async fn get_endpoint(&self, request: Request<pb::GetEndpointRequest>) -> Result<Response<pb::Endpoint>, Status> {
        let tenant = tenant_of(&request)?;
        let id = endpoint_id(&request.get_ref().endpoint_id)?;
        Ok(Response::new(self.view(&tenant, id)?))
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let state = self.endpoints.state().read();
        let endpoints = state
            .state
            .tenant(&tenant)
            .map(|t| t.endpoints.values().filter(|e| !e.deleted).map(endpoint_view).collect())
            .unwrap_or_default();
        Ok(Response::new(pb::ListEndpointsResponse { endpoints }))
    }

    async fn update_endpoint(
        &self,
        request: Request<pb::UpdateEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?.to_owned();
        self.view(&tenant, &id)?;
        let settings = self.validate_settings(request.settings).await?;
        self.endpoints
            .execute(&tenant, &id, &command_id("")?, Command::Update { settings })
            .await?;
        self.dispatcher.wake(&tenant, &id);
        Ok(Response::new(self.view(&tenant, &id)?))
    }

    async fn set_endpoint_enabled(
        &self,
        request: Request<pb::SetEndpointEnabledRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?.to_owned();
        self.endpoints
            .execute(
                &tenant,
                &id,
                &command_id("")?,
                Command::SetEnabled {
                    enabled: request.enabled,
                },
            )
            .await?;
        self.dispatcher.wake(&tenant, &id);
        Ok(Response::new(self.view(&tenant, &id)?))
    }

    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::DeleteEndpointResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = endpoint_id(&request.get_ref().endpoint_id)?.to_owned();
        self.endpoints
            .execute(&tenant, &id, &command_id("")?, Command::Delete)
            .await?;
        self.dispatcher.wake(&tenant, &id);
        Ok(Response::new(pb::DeleteEndpointResponse {}))
    }

    async fn rotate_secret(
        &self,
        request: Request<pb::RotateSecretRequest>,
    ) -> Result<Response<pb::RotateSecretResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?.to_owned();
        self.view(&tenant, &id)?;
        let key = self.signing_key(&request.secret)?;
        let sealed = self.seal(&tenant, &id, &key)?;
        let previous_expires_at_ms = now_ms() + ROTATION_OVERLAP_MS;
        self.endpoints
            .execute(
                &tenant,
                &id,
                &command_id("")?,
                Command::Rotate {
                    sealed,
                    previous_expires_at_ms,
                },
            )
            .await?;
        Ok(Response::new(pb::RotateSecretResponse {
            secret: key.to_secret(),
            previous_expires_at_ms,
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?;
        let wanted = match request.status.as_str() {
            "" => None,
            "pending" => Some(MessageStatus::Pending),
            "delivered" => Some(MessageStatus::Delivered),
            "failed" => Some(MessageStatus::Failed),
            _ => return Err(invalid("status", "pending, delivered, failed or empty")),
        };
        if request.since_ms < 0 {
            return Err(invalid("since_ms", "must not be negative"));
        }
        let limit = limit(request.limit)?;
        let messages = self.read(&tenant, id, |endpoint| {
            endpoint
                .messages
                .values()
                .rev()
                .filter(|m| wanted.is_none_or(|w| m.status == w) && m.created_at_ms >= request.since_ms)
                .take(limit)
                .map(|m| pb::Message {
                    message_id: m.id.clone(),
                    event_id: m.event_id.clone(),
                    event_type: m.event_type.clone(),
                    aggregate_id: m.aggregate_id.clone(),
                    status: m.status.name().to_owned(),
                    attempts: m.attempts,
                    created_at_ms: m.created_at_ms,
                    next_attempt_at_ms: if m.status == MessageStatus::Pending {
                        m.next_attempt_at_ms
                    } else {
                        0
                    },
                    payload: if request.with_payload {
                        m.payload.clone()
                    } else {
                        String::new()
                    },
                })
                .collect()
        })?;
        Ok(Response::new(pb::ListMessagesResponse { messages }))
    }

    async fn list_attempts(
        &self,
        request: Request<pb::ListAttemptsRequest>,
    ) -> Result<Response<pb::ListAttemptsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?;
        let limit = limit(request.limit)?;
        let attempts = self.read(&tenant, id, |endpoint| {
            if request.message_id.is_empty() {
                Ok(endpoint
                    .attempts
                    .iter()
                    .rev()
                    .take(limit)
                    .map(|a| a.to_proto())
                    .collect())
            } else {
                endpoint
                    .message(&request.message_id)
                    .map(|m| m.history.iter().rev().take(limit).map(|a| a.to_proto()).collect())
                    .ok_or_else(|| not_found("message", &request.message_id))
            }
        })??;
        Ok(Response::new(pb::ListAttemptsResponse { attempts }))
    }

    async fn replay(&self, request: Request<pb::ReplayRequest>) -> Result<Response<pb::ReplayResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let id = endpoint_id(&request.endpoint_id)?.to_owned();
        if request.since_ms < 0 {
            return Err(invalid("since_ms", "must not be negative"));
        }
        let message_ids: Vec<String> = match (request.message_id.is_empty(), request.since_ms > 0) {
            (false, false) => self.read(&tenant, &id, |endpoint| {
                endpoint
                    .message(&request.message_id)
                    .map(|m| vec![m.id.clone()])
                    .ok_or_else(|| not_found("message", &request.message_id))
            })??,
            (true, true) => self.read(&tenant, &id, |endpoint| {
                // Waiting messages are on their way already; a replay is for finished ones.
                endpoint
                    .messages
                    .values()
                    .filter(|m| m.created_at_ms >= request.since_ms && m.status != MessageStatus::Pending)
                    .filter(|m| !request.only_failed || m.status == MessageStatus::Failed)
                    .map(|m| m.id.clone())
                    .collect()
            })?,
            (false, true) => return Err(invalid("message_id", "give message_id or since_ms, not both")),
            (true, false) => return Err(invalid("message_id", "give message_id or since_ms")),
        };
        if message_ids.is_empty() {
            return Ok(Response::new(pb::ReplayResponse { message_ids }));
        }
        let aggregate = deliveries_aggregate(&id);
        let command = command_id("")?;
        let event = envelope(
            &tenant,
            "deliveries",
            &aggregate,
            &command,
            Payload::WebhookMessagesReplayed(pb::MessagesReplayed {
                message_ids: message_ids.clone(),
                requested_at_ms: now_ms(),
            }),
        );
        let commit = NewCommit {
            context: LogContext::WEBHOOK,
            tenant_id: tenant.clone(),
            aggregate_id: aggregate,
            command_id: command,
            events: vec![event],
            trace: None,
        };
        let appended = self.log.append(commit, Expected::Any).await.map_err(unavailable)?;
        self.endpoints
            .state()
            .applied(appended.partition, appended.sequence)
            .await;
        self.dispatcher.wake(&tenant, &id);
        Ok(Response::new(pb::ReplayResponse { message_ids }))
    }

    async fn list_event_types(
        &self,
        _request: Request<pb::ListEventTypesRequest>,
    ) -> Result<Response<pb::ListEventTypesResponse>, Status> {
        let event_types = yy_events::schema::event_types()
            .into_iter()
            .map(|t| pb::EventType {
                name: t.name.to_owned(),
                version: t.version,
                description: t.description.to_owned(),
                schema_json: t.schema.to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListEventTypesResponse { event_types }))
    }
}
