//! The JSON shapes of the webhook part of the REST API (endpoints, messages, attempts, replays,
//! the event catalogue) and their translation to and from the webhook API.
//!
//! The webhook API gives times in milliseconds since the epoch, 0 meaning none; here they are
//! RFC 3339, left out when there is none. A message's body, the event's JSON, is a JSON value.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use yy_proto::webhook::v1 as pb;

use crate::problem::{Problem, ProblemKind};
use crate::rest::model::{non_empty, timestamp_ms};

/// A time in milliseconds since the epoch, where 0 means none.
fn time_ms(ms: i64) -> Option<String> {
    (ms != 0).then(|| timestamp_ms(ms))
}

/// `text`, an RFC 3339 time, in milliseconds since the epoch; refused naming `field`.
pub(crate) fn parse_time_ms(field: &str, text: &str) -> Result<i64, Problem> {
    let invalid = || {
        Problem::new(
            ProblemKind::ValidationFailed,
            format!(
                "{field}: {:?} is not an RFC 3339 time such as 2025-05-20T08:30:00Z",
                text.chars().take(64).collect::<String>()
            ),
        )
    };
    let time = prost_types::Timestamp::from_str(text).map_err(|_| invalid())?;
    let ms = time
        .seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(time.nanos / 1_000_000)))
        .ok_or_else(invalid)?;
    if ms <= 0 {
        return Err(Problem::new(
            ProblemKind::ValidationFailed,
            format!("{field}: must be after 1970-01-01T00:00:00Z"),
        ));
    }
    Ok(ms)
}

/// A webhook endpoint: where a tenant's events are POSTed, signed. Its signing secret is only
/// ever shown when it is made (creation, rotation).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "whk_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "url": "https://crm.example.com/hooks/yiwaiwai",
    "event_types": ["conversation.*", "message.created"],
    "description": "CRM timeline",
    "headers": {"x-team": "support"},
    "rate_limit_per_sec": 50,
    "ordered": false,
    "enabled": true,
    "created_at": "2025-05-20T08:30:00.123Z",
    "pending_messages": 0
}))]
pub struct Endpoint {
    /// `whk_…`.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives: exact names, a resource's events (`conversation.*`) or `*`.
    pub event_types: Vec<String>,
    /// Free text for its owner; empty when none was given.
    pub description: String,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// At most this many attempts per second; 0: only the concurrency bound.
    pub rate_limit_per_sec: u32,
    /// One conversation's (one aggregate's) messages are delivered one at a time, in order.
    pub ordered: bool,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it is disabled: `requested`, `gone` (it answered 410) or `failing` (every attempt
    /// failed for days). Absent while enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When it was registered (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Since when every attempt failed (RFC 3339); absent while its latest attempt succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub failing_since: Option<String>,
    /// Messages waiting for their first attempt or a retry.
    pub pending_messages: u64,
}

impl From<pb::Endpoint> for Endpoint {
    fn from(endpoint: pb::Endpoint) -> Self {
        let settings = endpoint.settings.unwrap_or_default();
        Endpoint {
            id: endpoint.endpoint_id,
            url: settings.url,
            event_types: settings.event_types,
            description: settings.description,
            headers: settings.headers.into_iter().collect(),
            rate_limit_per_sec: settings.rate_limit_per_sec,
            ordered: settings.ordered,
            enabled: endpoint.enabled,
            disabled_reason: non_empty(endpoint.disabled_reason),
            created_at: timestamp_ms(endpoint.created_at_ms),
            failing_since: time_ms(endpoint.failing_since_ms),
            pending_messages: endpoint.pending_messages,
        }
    }
}

/// A newly registered endpoint with its signing secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "whk_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "url": "https://crm.example.com/hooks/yiwaiwai",
    "event_types": ["conversation.*", "message.created"],
    "description": "CRM timeline",
    "headers": {},
    "rate_limit_per_sec": 0,
    "ordered": false,
    "enabled": true,
    "created_at": "2025-05-20T08:30:00.123Z",
    "pending_messages": 0,
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
}))]
pub struct CreatedEndpoint {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// The signing secret, `whsec_` + base64: shown only in this answer. Absent when the
    /// request repeated an earlier one (the same `Idempotency-Key`) whose answer showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// An endpoint to register.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://crm.example.com/hooks/yiwaiwai",
    "event_types": ["conversation.*", "message.created"],
    "description": "CRM timeline",
    "headers": {"x-team": "support"},
    "rate_limit_per_sec": 50
}))]
pub struct CreateEndpoint {
    /// `http://` or `https://`, without credentials. Refused when its host is, or resolves to, a
    /// loopback, private, link-local or otherwise internal address the service does not allow.
    pub url: String,
    /// At least one: exact names (`message.created`), a resource's events (`conversation.*`) or
    /// `*`; each must match a type of `GET /v1/webhooks/event-types`.
    pub event_types: Vec<String>,
    /// Free text, up to 1,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// Up to 20 extra headers sent with every delivery; `webhook-*`, `content-type`,
    /// `content-length`, `host`, `connection` and `transfer-encoding` are the service's own.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// At most this many attempts per second (up to 10,000); 0 or absent: only the concurrency
    /// bound.
    #[serde(default)]
    pub rate_limit_per_sec: Option<u32>,
    /// Deliver one conversation's (one aggregate's) messages one at a time, in order.
    #[serde(default)]
    pub ordered: Option<bool>,
    /// `false` registers it disabled; default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A signing secret of your own (`whsec_` + base64 of 24 to 64 bytes); absent: one is made.
    #[serde(default)]
    pub secret: Option<String>,
}

impl CreateEndpoint {
    pub(crate) fn into_proto(self, command_id: String) -> pb::CreateEndpointRequest {
        pb::CreateEndpointRequest {
            command_id,
            settings: Some(pb::EndpointSettings {
                url: self.url,
                event_types: self.event_types,
                description: self.description.unwrap_or_default(),
                headers: self.headers.unwrap_or_default().into_iter().collect(),
                rate_limit_per_sec: self.rate_limit_per_sec.unwrap_or(0),
                ordered: self.ordered.unwrap_or(false),
            }),
            enabled: self.enabled,
            secret: self.secret.unwrap_or_default(),
        }
    }
}

/// Changes to an endpoint's settings; fields left out keep their value. Enabling and disabling
/// are `POST …/enable` and `POST …/disable`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_types": ["*"], "rate_limit_per_sec": 10}))]
pub struct UpdateEndpoint {
    /// As for creation.
    #[serde(default)]
    pub url: Option<String>,
    /// As for creation; replaces the whole list.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// As for creation; `""` clears it.
    #[serde(default)]
    pub description: Option<String>,
    /// As for creation; replaces every extra header (`{}` removes them all).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// As for creation.
    #[serde(default)]
    pub rate_limit_per_sec: Option<u32>,
    /// As for creation.
    #[serde(default)]
    pub ordered: Option<bool>,
}

impl UpdateEndpoint {
    /// `current` with these changes.
    pub(crate) fn apply(self, current: pb::EndpointSettings) -> pb::EndpointSettings {
        pb::EndpointSettings {
            url: self.url.unwrap_or(current.url),
            event_types: self.event_types.unwrap_or(current.event_types),
            description: self.description.unwrap_or(current.description),
            headers: self
                .headers
                .map_or(current.headers, |headers| headers.into_iter().collect()),
            rate_limit_per_sec: self.rate_limit_per_sec.unwrap_or(current.rate_limit_per_sec),
            ordered: self.ordered.unwrap_or(current.ordered),
        }
    }
}

/// The tenant's endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EndpointList {
    /// By id.
    pub endpoints: Vec<Endpoint>,
}

/// A new signing secret to use (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))]
pub struct RotateSecret {
    /// A secret of your own (`whsec_` + base64 of 24 to 64 bytes); absent: one is made.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The new signing secret.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "previous_secret_expires_at": "2025-05-21T08:30:00.123Z"
}))]
pub struct RotatedSecret {
    /// `whsec_` + base64: shown only in this answer.
    pub secret: String,
    /// Until then the previous secret signs deliveries too, beside this one (RFC 3339).
    #[schema(format = DateTime)]
    pub previous_secret_expires_at: String,
}

impl From<pb::RotateSecretResponse> for RotatedSecret {
    fn from(rotated: pb::RotateSecretResponse) -> Self {
        RotatedSecret {
            secret: rotated.secret,
            previous_secret_expires_at: timestamp_ms(rotated.previous_expires_at_ms),
        }
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// The endpoint accepted it (a 2xx answer).
    Delivered,
    /// Every attempt of the retry schedule failed.
    Failed,
}

impl MessageStatus {
    /// Every status with its name, for parsing query parameters.
    pub const ALL: [(&'static str, MessageStatus); 3] = [
        ("pending", MessageStatus::Pending),
        ("delivered", MessageStatus::Delivered),
        ("failed", MessageStatus::Failed),
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }
}

/// A message made for an endpoint from one event: what is delivered, with the same
/// `webhook-id` on every attempt and replay.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "msg_3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b",
    "event_id": "0196f7b2-c1d0-7a1b-9e3c-5d2f4a6b8c0e",
    "event_type": "message.created",
    "aggregate_id": "conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
    "status": "failed",
    "attempts": 8,
    "created_at": "2025-05-20T08:30:00.123Z"
}))]
pub struct WebhookMessage {
    /// `msg_…`: the `webhook-id` header of its deliveries.
    pub id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The conversation, contact or agent the event is about.
    pub aggregate_id: String,
    /// Where it is.
    pub status: MessageStatus,
    /// Attempts made so far, replays included.
    pub attempts: u32,
    /// When it was made (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the next attempt is due (RFC 3339); absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// The body POSTed: the event as JSON. Only with `with_payload=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
}

impl From<pb::Message> for WebhookMessage {
    fn from(message: pb::Message) -> Self {
        let status = MessageStatus::ALL
            .iter()
            .find(|(name, _)| *name == message.status)
            .map(|(_, status)| *status)
            .unwrap_or_else(|| {
                tracing::error!(
                    status = message.status,
                    "the webhook service sent an unknown message status"
                );
                MessageStatus::Pending
            });
        let payload = (!message.payload.is_empty()).then(|| {
            serde_json::from_str(&message.payload).unwrap_or_else(|error| {
                tracing::error!(%error, "the webhook service sent a message body that does not parse");
                Value::String(message.payload.clone())
            })
        });
        WebhookMessage {
            id: message.message_id,
            event_id: message.event_id,
            event_type: message.event_type,
            aggregate_id: message.aggregate_id,
            status,
            attempts: message.attempts,
            created_at: timestamp_ms(message.created_at_ms),
            next_attempt_at: time_ms(message.next_attempt_at_ms),
            payload,
        }
    }
}

/// An endpoint's messages.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageList {
    /// Newest first.
    pub messages: Vec<WebhookMessage>,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({
    "message_id": "msg_3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b",
    "attempt": 2,
    "started_at": "2025-05-20T08:30:05.200Z",
    "status_code": 503,
    "latency_ms": 41,
    "response_excerpt": "upstream busy",
    "delivered": false,
    "next_attempt_at": "2025-05-20T08:35:05.200Z"
}))]
pub struct Attempt {
    /// The message (`webhook-id`).
    pub message_id: String,
    /// 1 for the first attempt, counting every attempt after it, replays included.
    pub attempt: u32,
    /// When the request was sent (RFC 3339).
    #[schema(format = DateTime)]
    pub started_at: String,
    /// The HTTP status answered; absent when none came (refused, timed out, not allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
    /// From sending the request to the end of the answer.
    pub latency_ms: u32,
    /// The start of the answer's body (at most 512 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    /// What failed when no HTTP status explains it (`timed out`, `connection refused`,
    /// `refused address: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the endpoint accepted the message (a 2xx answer).
    pub delivered: bool,
    /// When the next attempt is due (RFC 3339); absent when none is: delivered, or failed for
    /// good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

impl From<pb::DeliveryAttempted> for Attempt {
    fn from(attempt: pb::DeliveryAttempted) -> Self {
        Attempt {
            message_id: attempt.message_id,
            attempt: attempt.attempt,
            started_at: timestamp_ms(attempt.started_at_ms),
            status_code: (attempt.status_code != 0).then_some(attempt.status_code),
            latency_ms: attempt.latency_ms,
            response_excerpt: non_empty(attempt.response_excerpt),
            error: non_empty(attempt.error),
            delivered: attempt.delivered,
            next_attempt_at: time_ms(attempt.next_attempt_at_ms),
        }
    }
}

/// Delivery attempts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptList {
    /// Newest first.
    pub attempts: Vec<Attempt>,
}

/// What to deliver again: one message, or the messages made since a time. Give exactly one of
/// `message_id` and `since`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2025-05-20T00:00:00Z", "only_failed": true}))]
pub struct Replay {
    /// One message (`msg_…`), whatever its status.
    #[serde(default)]
    pub message_id: Option<String>,
    /// Every delivered or failed message made at or after this time (RFC 3339). Messages still
    /// pending are on their way already and are not replayed.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// With `since`: only the failed messages.
    #[serde(default)]
    pub only_failed: Option<bool>,
}

impl Replay {
    pub(crate) fn into_proto(self, endpoint_id: String) -> Result<pb::ReplayRequest, Problem> {
        let invalid = |detail: &str| Problem::new(ProblemKind::ValidationFailed, detail);
        match (self.message_id, self.since) {
            (Some(message_id), None) => {
                if self.only_failed.is_some() {
                    return Err(invalid("only_failed: only with since"));
                }
                if message_id.is_empty() {
                    return Err(invalid("message_id: must not be empty"));
                }
                Ok(pb::ReplayRequest {
                    endpoint_id,
                    message_id,
                    since_ms: 0,
                    only_failed: false,
                })
            }
            (None, Some(since)) => Ok(pb::ReplayRequest {
                endpoint_id,
                message_id: String::new(),
                since_ms: parse_time_ms("since", &since)?,
                only_failed: self.only_failed.unwrap_or(false),
            }),
            (Some(_), Some(_)) => Err(invalid("message_id: give message_id or since, not both")),
            (None, None) => Err(invalid("message_id: give message_id (one message) or since")),
        }
    }
}

/// The messages put back to be delivered at once.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"message_ids": ["msg_3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b", "msg_9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"]}))]
pub struct Replayed {
    /// Exactly the messages that are delivered again, oldest first.
    pub message_ids: Vec<String>,
}

/// One public event type an endpoint can subscribe to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventType {
    /// Such as `message.created`.
    #[schema(example = "message.created")]
    pub name: String,
    /// The version of its schema; within a version fields are only ever added.
    #[schema(example = 1)]
    pub version: u32,
    /// What it means.
    pub description: String,
    /// The JSON Schema (draft 2020-12) of the whole event: the envelope and its `data`.
    #[schema(value_type = Object)]
    pub schema: Value,
}

impl From<pb::EventType> for EventType {
    fn from(event_type: pb::EventType) -> Self {
        let schema = serde_json::from_str(&event_type.schema_json).unwrap_or_else(|error| {
            tracing::error!(%error, name = event_type.name, "the webhook service sent a schema that does not parse");
            Value::String(event_type.schema_json.clone())
        });
        EventType {
            name: event_type.name,
            version: event_type.version,
            description: event_type.description,
            schema,
        }
    }
}

/// The event catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventTypeList {
    /// In catalogue order.
    pub event_types: Vec<EventType>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_and_mistakes_name_the_field() {
        assert_eq!(
            parse_time_ms("since", "2025-05-20T08:30:00.123Z").expect("valid"),
            1_747_729_800_123
        );
        assert_eq!(
            parse_time_ms("since", "2025-05-20T10:30:00+02:00").expect("offset"),
            1_747_729_800_000
        );
        for bad in ["yesterday", "2025-05-20T08:30", "1970-01-01T00:00:00Z", ""] {
            let problem = parse_time_ms("since", bad).expect_err(bad);
            assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed));
            assert!(problem.detail.unwrap_or_default().starts_with("since:"), "{bad}");
        }
    }

    #[test]
    fn a_replay_names_one_message_or_a_time() {
        let one = Replay {
            message_id: Some("msg_1".into()),
            ..Replay::default()
        };
        assert_eq!(one.into_proto("whk_1".into()).expect("one").message_id, "msg_1");
        let since = Replay {
            since: Some("2025-05-20T08:30:00Z".into()),
            only_failed: Some(true),
            ..Replay::default()
        };
        let request = since.into_proto("whk_1".into()).expect("since");
        assert_eq!((request.since_ms, request.only_failed), (1_747_729_800_000, true));
        for (replay, field) in [
            (Replay::default(), "message_id"),
            (
                Replay {
                    message_id: Some("msg_1".into()),
                    since: Some("2025-05-20T08:30:00Z".into()),
                    only_failed: None,
                },
                "message_id",
            ),
            (
                Replay {
                    message_id: Some("msg_1".into()),
                    only_failed: Some(true),
                    since: None,
                },
                "only_failed",
            ),
        ] {
            let problem = replay.into_proto("whk_1".into()).expect_err(field);
            assert!(problem.detail.unwrap_or_default().starts_with(field), "{field}");
        }
    }

    #[test]
    fn a_patch_keeps_what_it_leaves_out() {
        let current = pb::EndpointSettings {
            url: "https://a.example/hook".into(),
            event_types: vec!["*".into()],
            description: "first".into(),
            headers: [("x-a".to_owned(), "1".to_owned())].into_iter().collect(),
            rate_limit_per_sec: 5,
            ordered: true,
        };
        let patched = UpdateEndpoint {
            event_types: Some(vec!["message.created".into()]),
            headers: Some(BTreeMap::new()),
            ..UpdateEndpoint::default()
        }
        .apply(current.clone());
        assert_eq!(patched.url, current.url);
        assert_eq!(patched.event_types, ["message.created"]);
        assert!(patched.headers.is_empty());
        assert_eq!((patched.rate_limit_per_sec, patched.ordered), (5, true));
        assert_eq!(patched.description, "first");
    }
}
