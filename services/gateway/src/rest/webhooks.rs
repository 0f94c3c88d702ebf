//! `/v1/webhooks`: endpoints that receive the tenant's events as signed HTTP POSTs, their
//! messages and delivery attempts, replays, and the catalogue of event types. The webhook
//! service does the work; these handlers translate.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use yy_proto::webhook::v1 as pb;

use crate::AppState;
use crate::problem::{Problem, ProblemKind};
use crate::rest::caller::Caller;
use crate::rest::idempotency::ShownOnce;
use crate::rest::json::{Json, OptionalJson};
use crate::rest::model::non_empty;
use crate::rest::query::{AttemptFilter, MessageFilter, QueryPairs};
use crate::rest::webhooks_model::{
    Attempt, AttemptList, CreateEndpoint, CreatedEndpoint, Endpoint, EndpointList, EventType, EventTypeList,
    MessageList, Replay, Replayed, RotateSecret, RotatedSecret, UpdateEndpoint, WebhookMessage,
};

const TAG: &str = "webhooks";

/// The problem document for a failed webhook call. The webhook API names fields as its messages
/// have them (`settings.url`, `since_ms`); REST bodies are flat and take times as RFC 3339, so
/// the names are the REST ones here.
fn problem(status: tonic::Status) -> Problem {
    let mut problem = Problem::from(status);
    if problem.kind() == Some(ProblemKind::ValidationFailed)
        && let Some(detail) = problem.detail.take()
    {
        let detail = detail.strip_prefix("settings.").unwrap_or(&detail);
        let detail = match detail.strip_prefix("since_ms") {
            Some(rest) => format!("since{rest}"),
            None => detail.to_owned(),
        };
        problem.detail = Some(detail);
    }
    problem
}

fn location(endpoint_id: &str) -> String {
    format!("/v1/webhooks/endpoints/{endpoint_id}")
}

/// Register an endpoint
///
/// Registers an HTTP endpoint for the tenant's events. From now on every event of the types it
/// names is POSTed to it, signed per Standard Webhooks with the secret in this answer — the only
/// time the secret is shown. With an `Idempotency-Key`, a retry answers 200 with the endpoint
/// the first request made, without the secret (rotate it if that answer was lost).
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints",
    tag = TAG,
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint was registered; the answer holds its signing secret", body = CreatedEndpoint,
            headers(("location" = String, description = "`/v1/webhooks/endpoints/{endpoint_id}`"))),
        (status = 200, description = "A retry with the same `Idempotency-Key`: the endpoint registered first, without its secret", body = CreatedEndpoint),
        (status = 422, description = "A setting is not valid (`validation-failed`); `detail` names it, such as `url: …` for an internal address",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/validation-failed",
                "title": "The request is not valid",
                "status": 422,
                "detail": "url: 10.0.0.1 is a private address, which deliveries may not reach"
            })),
        (status = 409, description = "The webhook service cannot store signing secrets: `webhook.secret_key` is not configured (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateEndpoint>,
) -> Result<Response, Problem> {
    let request = body.into_proto(caller.command_id.clone());
    let created = state
        .webhooks
        .clone()
        .create_endpoint(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    let endpoint = Endpoint::from(created.endpoint.unwrap_or_default());
    let secret = non_empty(created.secret);
    let status = if secret.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        [(header::LOCATION, location(&endpoint.id))],
        axum::Json(CreatedEndpoint { endpoint, secret }),
    )
        .into_response();
    response.extensions_mut().insert(ShownOnce);
    Ok(response)
}

/// List endpoints
///
/// The tenant's endpoints, by id, without their secrets.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints",
    tag = TAG,
    responses(
        (status = 200, description = "The endpoints", body = EndpointList),
    ),
    security(("api_key" = []))
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<EndpointList>, Problem> {
    let list = state
        .webhooks
        .clone()
        .list_endpoints(caller.request(pb::ListEndpointsRequest {}))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(EndpointList {
        endpoints: list.endpoints.into_iter().map(Endpoint::from).collect(),
    }))
}

async fn fetch(state: &AppState, caller: &Caller, endpoint_id: String) -> Result<pb::Endpoint, Problem> {
    Ok(state
        .webhooks
        .clone()
        .get_endpoint(caller.request(pb::GetEndpointRequest { endpoint_id }))
        .await
        .map_err(problem)?
        .into_inner())
}

/// Get an endpoint
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
    ),
    security(("api_key" = []))
)]
pub async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
) -> Result<axum::Json<Endpoint>, Problem> {
    Ok(axum::Json(fetch(&state, &caller, endpoint_id).await?.into()))
}

/// Change an endpoint
///
/// Changes the settings given; the others keep their value. Events are matched against the new
/// event types from now on; messages already made are delivered as they are.
#[utoipa::path(
    patch,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The endpoint as it is now", body = Endpoint),
    ),
    security(("api_key" = []))
)]
pub async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
    Json(body): Json<UpdateEndpoint>,
) -> Result<axum::Json<Endpoint>, Problem> {
    // The webhook API replaces settings whole; a change by another client between this read and
    // the update would be overwritten, which is what PATCH of the same fields means anyway.
    let current = fetch(&state, &caller, endpoint_id.clone()).await?;
    let request = pb::UpdateEndpointRequest {
        endpoint_id,
        settings: Some(body.apply(current.settings.unwrap_or_default())),
    };
    let endpoint = state
        .webhooks
        .clone()
        .update_endpoint(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(endpoint.into()))
}

/// Delete an endpoint
///
/// Nothing more is delivered to it; its waiting messages are dropped.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/endpoints/{endpoint_id}",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    responses(
        (status = 204, description = "The endpoint was deleted"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, Problem> {
    state
        .webhooks
        .clone()
        .delete_endpoint(caller.request(pb::DeleteEndpointRequest { endpoint_id }))
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    endpoint_id: String,
    enabled: bool,
) -> Result<axum::Json<Endpoint>, Problem> {
    let endpoint = state
        .webhooks
        .clone()
        .set_endpoint_enabled(caller.request(pb::SetEndpointEnabledRequest { endpoint_id, enabled }))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(endpoint.into()))
}

/// Enable an endpoint
///
/// Deliveries resume: messages that waited go out, and events from now on make new ones.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/enable",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    responses(
        (status = 200, description = "The endpoint, enabled", body = Endpoint),
    ),
    security(("api_key" = []))
)]
pub async fn enable_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
) -> Result<axum::Json<Endpoint>, Problem> {
    set_enabled(&state, &caller, endpoint_id, true).await
}

/// Disable an endpoint
///
/// No deliveries are made and events while it is disabled make no messages for it; messages
/// already waiting keep waiting until it is enabled again.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/disable",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    responses(
        (status = 200, description = "The endpoint, disabled (`disabled_reason`: `requested`)", body = Endpoint),
    ),
    security(("api_key" = []))
)]
pub async fn disable_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
) -> Result<axum::Json<Endpoint>, Problem> {
    set_enabled(&state, &caller, endpoint_id, false).await
}

/// Rotate an endpoint's signing secret
///
/// Makes a new signing secret (or takes the one given) and answers it, once. For 24 hours the
/// previous secret keeps signing beside the new one — each delivery carries a `v1,` signature
/// per secret — so the receiver can switch without refusing a delivery. Answers are never kept
/// for `Idempotency-Key` replays: a retried rotation rotates again and answers the newest secret.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/rotate-secret",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    request_body(content = Option<RotateSecret>, description = "Optional: a secret of your own"),
    responses(
        (status = 200, description = "The new secret, shown only here", body = RotatedSecret),
    ),
    security(("api_key" = []))
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> Result<Response, Problem> {
    let request = pb::RotateSecretRequest {
        endpoint_id,
        secret: body.and_then(|b| b.secret).unwrap_or_default(),
    };
    let rotated = state
        .webhooks
        .clone()
        .rotate_secret(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    let mut response = axum::Json(RotatedSecret::from(rotated)).into_response();
    response.extensions_mut().insert(ShownOnce);
    Ok(response)
}

/// List an endpoint's messages
///
/// The messages made for the endpoint, newest first: all, or only the pending, delivered or
/// failed ones, optionally only those made since a time. Every waiting message and the latest
/// 2,000 finished ones are kept for listing and replay.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}/messages",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)"), MessageFilter),
    responses(
        (status = 200, description = "The messages", body = MessageList),
    ),
    security(("api_key" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<MessageList>, Problem> {
    let filter = MessageFilter::parse(&query)?;
    let request = pb::ListMessagesRequest {
        endpoint_id,
        status: filter.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        since_ms: filter.since_ms,
        limit: filter.limit,
        with_payload: filter.with_payload,
    };
    let list = state
        .webhooks
        .clone()
        .list_messages(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(MessageList {
        messages: list.messages.into_iter().map(WebhookMessage::from).collect(),
    }))
}

async fn attempts(
    state: &AppState,
    caller: &Caller,
    endpoint_id: String,
    message_id: String,
    query: &QueryPairs,
) -> Result<axum::Json<AttemptList>, Problem> {
    let request = pb::ListAttemptsRequest {
        endpoint_id,
        message_id,
        limit: AttemptFilter::parse(query)?,
    };
    let list = state
        .webhooks
        .clone()
        .list_attempts(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(AttemptList {
        attempts: list.attempts.into_iter().map(Attempt::from).collect(),
    }))
}

/// List an endpoint's latest attempts
///
/// Delivery attempts to the endpoint, newest first, with the status answered, the latency, the
/// start of the answer and the error. The latest 1,000 are kept for listing.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}/attempts",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)"), AttemptFilter),
    responses(
        (status = 200, description = "The attempts", body = AttemptList),
    ),
    security(("api_key" = []))
)]
pub async fn list_endpoint_attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<AttemptList>, Problem> {
    attempts(&state, &caller, endpoint_id, String::new(), &query).await
}

/// List a message's attempts
///
/// Every attempt to deliver one message (the latest 20 are kept for listing), newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/endpoints/{endpoint_id}/messages/{message_id}/attempts",
    tag = TAG,
    params(
        ("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)"),
        ("message_id" = String, Path, description = "The message (`msg_…`)"),
        AttemptFilter,
    ),
    responses(
        (status = 200, description = "The attempts", body = AttemptList),
    ),
    security(("api_key" = []))
)]
pub async fn list_message_attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path((endpoint_id, message_id)): Path<(String, String)>,
    query: QueryPairs,
) -> Result<axum::Json<AttemptList>, Problem> {
    attempts(&state, &caller, endpoint_id, message_id, &query).await
}

/// Deliver messages again
///
/// Puts messages back to be delivered at once, with their original `webhook-id`: one message
/// (`message_id`, whatever its status), or every delivered and failed message made since a time
/// (`since`), or only the failed ones (`only_failed`). Answers exactly the messages that are
/// delivered again.
#[utoipa::path(
    post,
    path = "/v1/webhooks/endpoints/{endpoint_id}/replay",
    tag = TAG,
    params(("endpoint_id" = String, Path, description = "The endpoint (`whk_…`)")),
    request_body = Replay,
    responses(
        (status = 200, description = "The messages put back", body = Replayed),
    ),
    security(("api_key" = []))
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint_id): Path<String>,
    Json(body): Json<Replay>,
) -> Result<axum::Json<Replayed>, Problem> {
    let request = body.into_proto(endpoint_id)?;
    let replayed = state
        .webhooks
        .clone()
        .replay(caller.request(request))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(Replayed {
        message_ids: replayed.message_ids,
    }))
}

/// List the event types
///
/// Every public event type an endpoint can subscribe to, with its version, its meaning and the
/// JSON Schema (draft 2020-12) of the whole event as delivered. The same schemas are committed in
/// `docs/event-schemas.json`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/event-types",
    tag = TAG,
    responses(
        (status = 200, description = "The catalogue", body = EventTypeList),
    ),
    security(("api_key" = []))
)]
pub async fn list_event_types(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<EventTypeList>, Problem> {
    let list = state
        .webhooks
        .clone()
        .list_event_types(caller.request(pb::ListEventTypesRequest {}))
        .await
        .map_err(problem)?
        .into_inner();
    Ok(axum::Json(EventTypeList {
        event_types: list.event_types.into_iter().map(EventType::from).collect(),
    }))
}
