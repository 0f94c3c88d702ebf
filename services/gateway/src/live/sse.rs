//! Live events as Server-Sent Events.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use yy_events::PublicEvent;

use super::{Delivery, KEEP_ALIVE, Scope, Shutdown, StreamParams, conversation_id, open};
use crate::AppState;
use crate::iam::Principal;
use crate::problem::Problem;

/// Stream a conversation's events
///
/// Server-Sent Events of one conversation's public events, as they happen.
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}/events",
    operation_id = "stream_conversation_events",
    tag = "live",
    params(
        ("conversation_id" = String, Path, description = "The conversation (`conv_…`)."),
        ("from" = Option<String>, Query, description = "`start` replays the conversation from its beginning; `now` (the default) streams only new events."),
        ("last_event_id" = Option<String>, Query, description = "Resume right after the event with this `id:` (the `Last-Event-ID` header wins when both are given)."),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume right after the event with this `id:`; browsers' `EventSource` sends it on reconnecting."),
        ("types" = Option<String>, Query, description = "Only these event types, comma-separated; `conversation.*` for a resource's types, `*` for all (the default)."),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = PublicEvent,
            description = "Server-Sent Events, one per public event, in the order they happened: `id:` is the cursor to resume after it, `event:` the event type, `data:` the event as JSON. A comment is sent every 15 s while nothing happens."),
        (status = 401, content_type = "application/problem+json", body = Problem, description = "No valid API key."),
        (status = 404, content_type = "application/problem+json", body = Problem, description = "No such conversation for this tenant."),
        (status = 422, content_type = "application/problem+json", body = Problem, description = "An invalid cursor, `from` or `types`."),
        (status = 503, content_type = "application/problem+json", body = Problem, description = "The conversation service or the event log cannot be reached."),
    ),
    security(("api_key" = []))
)]
pub(super) async fn conversation(
    principal: Principal,
    State(state): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let scope = match conversation_id(path) {
        Ok(id) => Scope::Conversation(id),
        Err(problem) => return problem.into_response(),
    };
    match open(&state, &principal, scope, params, &headers).await {
        Ok(feed) => respond(feed, shutdown),
        Err(problem) => problem.into_response(),
    }
}

/// Stream the tenant's events
///
/// Server-Sent Events of every public event of the caller's tenant, as they happen.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "stream_events",
    tag = "live",
    params(
        ("types" = Option<String>, Query, description = "Only these event types, comma-separated, such as `message.created,conversation.*`; `*` for all (the default). A name that matches no type is refused."),
        ("from" = Option<String>, Query, description = "`start` replays the tenant's history from its beginning; `now` (the default) streams only new events."),
        ("last_event_id" = Option<String>, Query, description = "Resume right after the event with this `id:` (the `Last-Event-ID` header wins when both are given)."),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume right after the event with this `id:`; browsers' `EventSource` sends it on reconnecting."),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = PublicEvent,
            description = "Server-Sent Events, one per public event of the tenant's conversations and contacts: `id:` is the cursor to resume after it, `event:` the event type, `data:` the event as JSON. Events of one conversation or contact arrive in the order they happened. A comment is sent every 15 s while nothing happens."),
        (status = 401, content_type = "application/problem+json", body = Problem, description = "No valid API key."),
        (status = 422, content_type = "application/problem+json", body = Problem, description = "An invalid cursor, `from` or `types`."),
        (status = 503, content_type = "application/problem+json", body = Problem, description = "The event log cannot be reached."),
    ),
    security(("api_key" = []))
)]
pub(super) async fn tenant(
    principal: Principal,
    State(state): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    match open(&state, &principal, Scope::Tenant, params, &headers).await {
        Ok(feed) => respond(feed, shutdown),
        Err(problem) => problem.into_response(),
    }
}

/// The SSE response for `feed`, ending when the gateway shuts down.
fn respond(feed: impl Stream<Item = Delivery> + Send + 'static, Shutdown(shutdown): Shutdown) -> Response {
    let events = feed
        .filter_map(|delivery| async move {
            match Event::default()
                .id(delivery.cursor)
                .event(delivery.event.event_type.as_str())
                .json_data(&delivery.event)
            {
                Ok(event) => Some(Ok::<_, Infallible>(event)),
                Err(error) => {
                    tracing::error!(%error, id = %delivery.event.id, "an event could not be serialized");
                    None
                }
            }
        })
        .take_until(shutdown.cancelled_owned());
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // Reverse proxies that buffer responses (nginx does by default) would hold events back.
    let no_buffering = [(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    )];
    (no_buffering, sse).into_response()
}
