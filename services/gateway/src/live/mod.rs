//! Live events: a conversation's or the whole tenant's public events as they happen, over
//! Server-Sent Events and WebSocket.
//!
//! Every stream is a tail of the conversation log filtered by the caller's tenant (and for a
//! conversation stream, by that conversation), mapped through the public event catalogue
//! (`yy_events`). Each delivered event carries a cursor; a client that reconnects with the last
//! cursor it received gets exactly the events after it. Every client reads with its own consumers
//! and a bounded buffer, so a slow client holds back only itself.
//!
//! Where a stream starts:
//! - by default, with events that happen after the response headers were sent;
//! - `?from=start`: from the beginning of the history;
//! - with a cursor (the `Last-Event-ID` header, or `?last_event_id=`): right after it. A cursor
//!   wins over `from`, because a reconnecting `EventSource` sends the header but keeps its URL.

mod feed;
mod sse;
mod ws;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::HeaderMap;
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use yy_eventlog::{LogContext, LogError, TailFilter, TailPosition, TailStart, validate_token};
use yy_events::{PublicEvent, TypeFilter};
use yy_proto::conversation::v1::GetConversationRequest;

use crate::AppState;
use crate::iam::Principal;
use crate::problem::{Problem, ProblemKind};

pub(crate) use feed::Delivery;

/// How often an idle stream sends a keep-alive (an SSE comment, a WebSocket ping), so proxies
/// and clients can tell a quiet stream from a dead one.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The header an `EventSource` sends on reconnecting, with the last event id it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// The live event routes; streams end when `shutdown` is cancelled, so the gateway can stop
/// without waiting for clients to hang up.
pub fn routes(shutdown: CancellationToken) -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/conversations/{conversation_id}/events", get(sse::conversation))
        .route("/v1/events", get(sse::tenant))
        .route("/v1/conversations/{conversation_id}/events/ws", get(ws::conversation))
        .route("/v1/events/ws", get(ws::tenant))
        .layer(Extension(Shutdown(shutdown)))
}

/// The OpenAPI description of the live event routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    LiveApi::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(sse::conversation, sse::tenant, ws::conversation, ws::tenant),
    components(schemas(PublicEvent, ws::Frame, Problem)),
    tags((name = "live", description = "Public events as they happen, over Server-Sent Events and WebSocket, resumable from the last event received"))
)]
struct LiveApi;

/// The gateway's shutdown, for the streams to end with.
#[derive(Clone, Debug)]
struct Shutdown(CancellationToken);

/// The query of every live route.
#[derive(Debug, Default, Deserialize)]
struct StreamParams {
    /// `start` to replay from the beginning; `now` (the default) for new events only.
    from: Option<String>,
    /// A cursor to resume after; the `Last-Event-ID` header takes precedence.
    last_event_id: Option<String>,
    /// Comma-separated event types, with `resource.*` and `*` wildcards.
    types: Option<String>,
}

/// What a stream is of.
enum Scope {
    /// One conversation.
    Conversation(String),
    /// Everything of the tenant.
    Tenant,
}

/// Checks the request and opens its feed: everything that can fail does so here, before the
/// response starts, so failures are problem documents rather than broken streams.
async fn open(
    state: &AppState,
    principal: &Principal,
    scope: Scope,
    params: Result<axum::extract::Query<StreamParams>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<impl futures::Stream<Item = Delivery> + Send + use<>, Problem> {
    let axum::extract::Query(params) =
        params.map_err(|rejection| Problem::new(ProblemKind::ValidationFailed, rejection.body_text()))?;
    let tenant_id = principal.tenant_id.clone();
    let filter = match &scope {
        Scope::Conversation(conversation_id) => TailFilter::aggregate(tenant_id.clone(), conversation_id.clone()),
        Scope::Tenant => TailFilter::tenant(tenant_id.clone()),
    };
    let types = match &params.types {
        None => TypeFilter::all(),
        Some(list) => {
            TypeFilter::parse(list).map_err(|e| Problem::new(ProblemKind::ValidationFailed, format!("types: {e}")))?
        }
    };
    let start = start(state.log.config().partitions, &filter, &params, headers)?;
    // After the checks that need no call: a malformed request costs no upstream round trip.
    if let Scope::Conversation(conversation_id) = &scope {
        ensure_conversation(state, &tenant_id, conversation_id).await?;
    }
    let tail = state
        .log
        .tail(LogContext::CONV, filter.clone(), start)
        .await
        .map_err(|error| match error {
            LogError::InvalidId { .. } => Problem::new(ProblemKind::NotFound, ""),
            error => {
                tracing::warn!(%error, "opening a live stream failed");
                Problem::new(ProblemKind::Unavailable, "the event log cannot be reached")
            }
        })?;
    Ok(feed::deliveries(tail, filter, types))
}

/// 404 unless the conversation exists for the tenant; another tenant's answers the same.
async fn ensure_conversation(state: &AppState, tenant_id: &str, conversation_id: &str) -> Result<(), Problem> {
    let not_found = || Problem::new(ProblemKind::NotFound, format!("no conversation {conversation_id}"));
    // An id that cannot be a subject token was never stored; asking would only echo it upstream.
    if validate_token("conversation", conversation_id).is_err() {
        return Err(not_found());
    }
    let request = GetConversationRequest {
        conversation_id: conversation_id.to_owned(),
    };
    match state
        .conversations
        .clone()
        .get_conversation(crate::upstream::for_tenant(tenant_id, request))
        .await
    {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::NotFound => Err(not_found()),
        Err(status) => Err(status.into()),
    }
}

/// Where the stream starts: after the cursor when one is given, else from the beginning or now.
fn start(
    partitions: u32,
    filter: &TailFilter,
    params: &StreamParams,
    headers: &HeaderMap,
) -> Result<TailStart, Problem> {
    let header = headers.get(LAST_EVENT_ID).map(|value| {
        value
            .to_str()
            .map_err(|_| Problem::new(ProblemKind::ValidationFailed, "Last-Event-ID: not ASCII"))
    });
    let cursor = match header.transpose()? {
        Some(cursor) if !cursor.trim().is_empty() => Some(("Last-Event-ID", cursor.trim())),
        _ => params
            .last_event_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| ("last_event_id", c)),
    };
    if let Some((name, cursor)) = cursor {
        let position = TailPosition::parse(cursor, filter, partitions)
            .map_err(|e| Problem::new(ProblemKind::ValidationFailed, format!("{name}: {e}")))?;
        return Ok(TailStart::After(position));
    }
    match params.from.as_deref() {
        None | Some("now") => Ok(TailStart::New),
        Some("start") => Ok(TailStart::After(TailPosition::beginning(partitions))),
        Some(other) => Err(Problem::new(
            ProblemKind::ValidationFailed,
            format!(
                "from: {:?} is not `start` or `now`",
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// The conversation id of a path, or 404 for one that cannot be decoded.
fn conversation_id(path: Result<axum::extract::Path<String>, PathRejection>) -> Result<String, Problem> {
    path.map(|axum::extract::Path(id)| id)
        .map_err(|_| Problem::new(ProblemKind::NotFound, ""))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn params(from: Option<&str>, last_event_id: Option<&str>) -> StreamParams {
        StreamParams {
            from: from.map(Into::into),
            last_event_id: last_event_id.map(Into::into),
            types: None,
        }
    }

    #[test]
    fn a_cursor_wins_over_from_and_the_header_over_the_query() {
        let filter = TailFilter::aggregate("t1", "conv_1");
        let none = HeaderMap::new();
        assert_eq!(start(4, &filter, &params(None, None), &none), Ok(TailStart::New));
        assert_eq!(start(4, &filter, &params(Some("now"), None), &none), Ok(TailStart::New));
        assert_eq!(
            start(4, &filter, &params(Some("start"), None), &none),
            Ok(TailStart::After(TailPosition::beginning(4)))
        );
        let at_7 = TailStart::After(TailPosition::parse("7", &filter, 4).expect("parse"));
        assert_eq!(
            start(4, &filter, &params(Some("start"), Some("7")), &none),
            Ok(at_7.clone())
        );

        let mut headers = HeaderMap::new();
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("9"));
        let at_9 = TailStart::After(TailPosition::parse("9", &filter, 4).expect("parse"));
        assert_eq!(start(4, &filter, &params(Some("start"), Some("7")), &headers), Ok(at_9));
        // An empty header (what some clients send before any event) means no cursor.
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static(""));
        assert_eq!(start(4, &filter, &params(None, Some("7")), &headers), Ok(at_7));
    }

    #[test]
    fn bad_cursors_and_starts_are_validation_problems_naming_the_parameter() {
        let filter = TailFilter::tenant("t1");
        let none = HeaderMap::new();
        let problem = start(4, &filter, &params(None, Some("1.2")), &none).expect_err("bad cursor");
        assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed));
        assert!(
            problem.detail.as_deref().unwrap_or("").starts_with("last_event_id: "),
            "{problem:?}"
        );

        let mut headers = HeaderMap::new();
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("x"));
        let problem = start(4, &filter, &params(None, None), &headers).expect_err("bad header");
        assert!(
            problem.detail.as_deref().unwrap_or("").starts_with("Last-Event-ID: "),
            "{problem:?}"
        );

        let problem = start(4, &filter, &params(Some("yesterday"), None), &none).expect_err("bad from");
        assert_eq!(problem.kind(), Some(ProblemKind::ValidationFailed));
    }

    #[test]
    fn openapi_describes_the_four_routes_as_streams_behind_the_api_key() {
        let doc = serde_json::to_value(openapi()).expect("json");
        let mut ids = std::collections::BTreeSet::new();
        for path in [
            "/v1/conversations/{conversation_id}/events",
            "/v1/events",
            "/v1/conversations/{conversation_id}/events/ws",
            "/v1/events/ws",
        ] {
            let get = &doc["paths"][path]["get"];
            assert!(get.is_object(), "{path} is documented");
            assert_eq!(get["security"][0]["api_key"], serde_json::json!([]), "{path}");
            assert!(get["summary"].is_string(), "{path} has a summary");
            ids.insert(get["operationId"].as_str().expect("operation id").to_owned());
        }
        assert_eq!(ids.len(), 4, "operation ids are unique: {ids:?}");
        let sse = &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"];
        assert!(sse["text/event-stream"].is_object(), "{sse}");
        assert!(doc["components"]["schemas"]["PublicEvent"].is_object());
    }
}
