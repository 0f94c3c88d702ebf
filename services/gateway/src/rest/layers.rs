//! What every HTTP request of the API goes through: a request id, the body limit, and problem
//! documents for whatever is refused before a handler runs.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures::StreamExt;
use tracing::Instrument;

use crate::problem::{Problem, ProblemKind};

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The longest client-chosen request id kept, in bytes.
const MAX_REQUEST_ID: usize = 128;

/// How much of an oversized body is read and discarded before answering, so that the client,
/// still sending, sees the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// How long discarding an oversized body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The request's id, in its extensions for handlers that log or pass it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Gives the request an id (the client's `x-request-id` when it is a sane token, else a new
/// UUIDv7), runs it in a span carrying that id, and returns the id on the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane_request_id(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    // Handlers read the header (such as to correlate events), so it must hold the id chosen here.
    request.headers_mut().insert(REQUEST_ID, value.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

fn sane_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads the body into memory, refusing one over `limit` bytes with 413 `request-too-large`.
/// Later layers and handlers then see a complete body (the idempotency layer fingerprints it).
/// Upgrades (WebSocket) are passed through: their connection is not a body.
pub async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if is_upgrade(&request) {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|length| length > limit as u64) {
        drain(stream).await;
        return too_large(limit);
    }
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) if buffer.len() + chunk.len() > limit => {
                drain(stream).await;
                return too_large(limit);
            }
            Ok(chunk) => buffer.extend_from_slice(&chunk),
            Err(error) => {
                tracing::debug!(%error, "reading a request body failed");
                return Problem::new(ProblemKind::MalformedRequest, "the request body could not be read")
                    .into_response();
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(buffer.freeze()))).await
}

/// Runs requests that change something on their own task, so that a client hanging up midway
/// cannot abandon a change halfway through: what was accepted is carried out.
pub async fn finish_writes(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) || is_upgrade(&request) {
        return next.run(request).await;
    }
    let span = tracing::Span::current();
    match tokio::spawn(next.run(request).instrument(span)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "a request's task failed");
            Problem::new(ProblemKind::Internal, "").into_response()
        }
    }
}

fn is_upgrade(request: &Request) -> bool {
    request.method() == Method::CONNECT || request.headers().contains_key(header::UPGRADE)
}

async fn drain(mut stream: axum::body::BodyDataStream) {
    let discard = async {
        let mut read = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

fn too_large(limit: usize) -> Response {
    Problem::new(
        ProblemKind::RequestTooLarge,
        format!("the request body must be at most {limit} bytes"),
    )
    .into_response()
}

/// 404 for paths the API does not have.
pub async fn not_found(request: Request) -> Problem {
    Problem::new(
        ProblemKind::NotFound,
        format!("there is no route {}", shorten(request.uri().path())),
    )
}

/// 405 for a path that exists with other methods (the `Allow` header lists them).
pub async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        ProblemKind::MethodNotAllowed,
        format!(
            "{} is not allowed on {}",
            request.method(),
            shorten(request.uri().path())
        ),
    )
}

/// Turns error responses that are not problem documents (such as a framework's plain-text
/// rejection of a malformed path or query) into problem documents of the matching kind, keeping
/// their headers (`Allow`, `WWW-Authenticate`).
pub async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_bare(response.headers()) {
        return response;
    }
    let Some(kind) = kind_of(status) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let detail = if kind == ProblemKind::Internal {
        String::new()
    } else {
        axum::body::to_bytes(body, 4096)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .unwrap_or_default()
    };
    let mut problem = Problem::new(kind, detail).into_response();
    *problem.status_mut() = status;
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().append(name, value.clone());
        }
    }
    problem
}

/// A response body that is not JSON of some kind (problem documents and any JSON a handler
/// chose are left alone).
fn is_bare(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(content_type) => content_type.starts_with("text/plain"),
    }
}

fn kind_of(status: StatusCode) -> Option<ProblemKind> {
    Some(match status {
        StatusCode::BAD_REQUEST => ProblemKind::MalformedRequest,
        StatusCode::UNAUTHORIZED => ProblemKind::Unauthorized,
        StatusCode::NOT_FOUND => ProblemKind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemKind::MethodNotAllowed,
        StatusCode::CONFLICT => ProblemKind::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemKind::RequestTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemKind::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemKind::ValidationFailed,
        StatusCode::INTERNAL_SERVER_ERROR => ProblemKind::Internal,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            ProblemKind::Unavailable
        }
        _ => return None,
    })
}

/// Caps a path taken from a request before it is echoed in a problem document.
fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_visible_tokens() {
        assert!(sane_request_id("req-42"));
        assert!(sane_request_id(&"a".repeat(128)));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id(&"a".repeat(129)));
        assert!(!sane_request_id("has space"));
        assert!(!sane_request_id("tab\t"));
    }

    #[test]
    fn bare_errors_map_to_kinds() {
        assert_eq!(kind_of(StatusCode::BAD_REQUEST), Some(ProblemKind::MalformedRequest));
        assert_eq!(
            kind_of(StatusCode::UNPROCESSABLE_ENTITY),
            Some(ProblemKind::ValidationFailed)
        );
        assert_eq!(kind_of(StatusCode::IM_A_TEAPOT), None);
        let mut headers = HeaderMap::new();
        assert!(is_bare(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        assert!(is_bare(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        assert!(!is_bare(&headers));
    }
}
