//! Live events over WebSocket: one JSON text frame per event.

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use yy_events::PublicEvent;

use super::{Delivery, KEEP_ALIVE, Scope, Shutdown, StreamParams, conversation_id, open};
use crate::AppState;
use crate::iam::Principal;
use crate::problem::{Problem, ProblemKind};

/// One WebSocket text frame: an event and the cursor that resumes right after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Frame {
    /// Pass as `last_event_id` when reconnecting to continue right after this event.
    id: String,
    /// The event.
    event: PublicEvent,
}

/// Stream a conversation's events over WebSocket
///
/// The conversation's public events as they happen, one JSON text frame each.
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}/events/ws",
    operation_id = "stream_conversation_events_ws",
    tag = "live",
    params(
        ("conversation_id" = String, Path, description = "The conversation (`conv_…`)."),
        ("from" = Option<String>, Query, description = "`start` replays the conversation from its beginning; `now` (the default) streams only new events."),
        ("last_event_id" = Option<String>, Query, description = "Resume right after the frame with this `id`."),
        ("types" = Option<String>, Query, description = "Only these event types, comma-separated; `conversation.*` for a resource's types, `*` for all (the default)."),
    ),
    responses(
        (status = 101, body = Frame,
            description = "Switched to WebSocket. The server sends one text frame per event, `{\"id\": cursor, \"event\": PublicEvent}`, in the order they happened, and a ping every 15 s while nothing happens; what the client sends is ignored. The server closes with 1001 when it shuts down."),
        (status = 401, content_type = "application/problem+json", body = Problem, description = "No valid API key."),
        (status = 404, content_type = "application/problem+json", body = Problem, description = "No such conversation for this tenant."),
        (status = 422, content_type = "application/problem+json", body = Problem, description = "An invalid cursor, `from` or `types`."),
        (status = 426, content_type = "application/problem+json", body = Problem, description = "Not a WebSocket upgrade."),
        (status = 503, content_type = "application/problem+json", body = Problem, description = "The conversation service or the event log cannot be reached."),
    ),
    security(("api_key" = []))
)]
#[allow(clippy::too_many_arguments)]
pub(super) async fn conversation(
    principal: Principal,
    State(state): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<StreamParams>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let result = async {
        let upgrade = upgrade.map_err(not_an_upgrade)?;
        let scope = Scope::Conversation(conversation_id(path)?);
        let feed = open(&state, &principal, scope, params, &headers).await?;
        Ok::<_, Problem>(upgrade.on_upgrade(move |socket| serve(socket, feed, shutdown.0)))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Stream the tenant's events over WebSocket
///
/// Every public event of the caller's tenant as it happens, one JSON text frame each.
#[utoipa::path(
    get,
    path = "/v1/events/ws",
    operation_id = "stream_events_ws",
    tag = "live",
    params(
        ("types" = Option<String>, Query, description = "Only these event types, comma-separated, such as `message.created,conversation.*`; `*` for all (the default)."),
        ("from" = Option<String>, Query, description = "`start` replays the tenant's history from its beginning; `now` (the default) streams only new events."),
        ("last_event_id" = Option<String>, Query, description = "Resume right after the frame with this `id`."),
    ),
    responses(
        (status = 101, body = Frame,
            description = "Switched to WebSocket. The server sends one text frame per event of the tenant's conversations and contacts, `{\"id\": cursor, \"event\": PublicEvent}`; events of one conversation or contact arrive in the order they happened. A ping every 15 s while nothing happens; the server closes with 1001 when it shuts down."),
        (status = 401, content_type = "application/problem+json", body = Problem, description = "No valid API key."),
        (status = 422, content_type = "application/problem+json", body = Problem, description = "An invalid cursor, `from` or `types`."),
        (status = 426, content_type = "application/problem+json", body = Problem, description = "Not a WebSocket upgrade."),
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
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let result = async {
        let upgrade = upgrade.map_err(not_an_upgrade)?;
        let feed = open(&state, &principal, Scope::Tenant, params, &headers).await?;
        Ok::<_, Problem>(upgrade.on_upgrade(move |socket| serve(socket, feed, shutdown.0)))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn not_an_upgrade(rejection: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Problem {
    Problem::new(
        ProblemKind::UpgradeRequired,
        format!(
            "this route speaks WebSocket (GET with `Connection: upgrade` and `Upgrade: websocket`; for Server-Sent \
             Events drop the `/ws`): {}",
            rejection.body_text()
        ),
    )
}

/// Sends `feed` to the client until it hangs up or the gateway shuts down.
async fn serve(mut socket: WebSocket, feed: impl Stream<Item = Delivery> + Send, shutdown: CancellationToken) {
    let mut feed = std::pin::pin!(feed);
    let start = tokio::time::Instant::now() + KEEP_ALIVE;
    let mut keep_alive = tokio::time::interval_at(start, KEEP_ALIVE);
    loop {
        let outgoing = tokio::select! {
            _ = shutdown.cancelled() => {
                close(&mut socket, close_code::AWAY, "the server is shutting down").await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // The client has nothing to say on this socket; pings are answered by the library.
                Some(Ok(_)) => continue,
            },
            delivery = feed.next() => match delivery {
                Some(Delivery { cursor, event }) => match serde_json::to_string(&Frame { id: cursor, event }) {
                    Ok(text) => Message::Text(text.into()),
                    Err(error) => {
                        tracing::error!(%error, "an event could not be serialized");
                        continue;
                    }
                },
                None => {
                    close(&mut socket, close_code::ERROR, "the event stream ended; reconnect with the last id").await;
                    return;
                }
            },
            _ = keep_alive.tick() => Message::Ping(Bytes::new()),
        };
        // A client that stops reading blocks only this send, and shutdown still ends it.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            sent = socket.send(outgoing) => if sent.is_err() { return },
        }
        keep_alive.reset();
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(KEEP_ALIVE, socket.send(Message::Close(Some(frame)))).await;
}
