//! `Idempotency-Key` on POST requests.
//!
//! The first request with a key claims it in the `YY_IDEMPOTENCY` bucket, is carried out, and
//! its response (status, body, content type, `Location`) is stored under the key for
//! `api.idempotency_ttl_secs`. A later request with the same key and the same method, path and
//! body gets the stored response again, marked `Idempotent-Replayed: true`; with another request
//! it gets 422 `idempotency-key-reused`; while the first is still being carried out, 409
//! `idempotency-key-in-use`. Failures the client may retry (5xx, `conflict`) are not stored, nor
//! are responses marked [`ShownOnce`] (they hold a secret); the key is released for those.
//!
//! Keys are scoped to the caller: an API key's tenant, or the admin. A request without valid
//! credentials is passed through untouched (it is refused anyway) and stores nothing.
//!
//! The gateway could stop after the conversation service stored a change but before the response
//! was stored. The claim then goes stale, and the retry that takes it over carries a command id
//! derived from the scope, the key and the request, the same as the first attempt's: the
//! conversation service recognises the command and answers without applying it twice.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tracing::Instrument;
use yy_eventlog::{KvBucket, KvError, KvSpec};

use crate::AppState;
use crate::problem::{Problem, ProblemKind};

/// The request header naming an idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The response header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The bucket holding the records.
pub const BUCKET: &str = "YY_IDEMPOTENCY";

/// The longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// How long a claim may stay in progress before a retry may take it over. Well above the
/// upstream call timeout (30 s), so a live request is never taken over.
const STALE_AFTER: Duration = Duration::from_secs(90);

/// The largest response stored for replay; POST responses are single resources, far smaller.
const MAX_STORED_BODY: usize = 512 * 1024;

/// The command id of a request carrying an `Idempotency-Key`, for the handler to pass upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandId {
    /// The tenant the key is scoped to.
    pub tenant_id: String,
    /// Hex SHA-256 of the scope, the key and the request's fingerprint.
    pub command_id: String,
}

/// A response extension marking an answer that shows a secret once (such as a webhook signing
/// secret). It is never stored: the service keeps such secrets only sealed, and a plain copy in
/// the idempotency bucket would defeat that. A retry reaches the service again instead, which
/// recognises the command id.
#[derive(Debug, Clone, Copy)]
pub struct ShownOnce;

/// The idempotency layer's state: the gateway's state and the bucket, opened on first use.
#[derive(Debug, Clone)]
pub struct Idempotency {
    state: AppState,
    bucket: Arc<OnceCell<KvBucket>>,
}

impl Idempotency {
    /// The layer for `state`'s gateway.
    pub fn new(state: AppState) -> Self {
        Idempotency {
            state,
            bucket: Arc::new(OnceCell::new()),
        }
    }

    async fn bucket(&self) -> Result<&KvBucket, Problem> {
        let spec = KvSpec {
            bucket: BUCKET.into(),
            description: "Idempotency-Key records of the public API: the response of each key's first request".into(),
            ttl: Duration::from_secs(self.state.config.api.idempotency_ttl_secs),
        };
        self.bucket
            .get_or_try_init(|| self.state.log.kv_bucket(&spec))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "the idempotency bucket cannot be opened");
                unavailable()
            })
    }

    /// Who the request's credentials belong to, for scoping keys: `None` without valid ones.
    fn scope(&self, headers: &HeaderMap, path: &str) -> Option<Scope> {
        let credentials = crate::iam::bearer(headers)?;
        if let Some(principal) = self.state.iam.authenticate(credentials) {
            return Some(Scope::Tenant(principal.tenant_id));
        }
        let is_admin = (path == "/admin" || path.starts_with("/admin/")) && self.state.iam.is_admin(credentials);
        is_admin.then_some(Scope::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Tenant(String),
    Admin,
}

impl Scope {
    fn label(&self) -> String {
        match self {
            Scope::Tenant(tenant_id) => format!("tenant/{tenant_id}"),
            Scope::Admin => "admin".into(),
        }
    }
}

/// What the bucket holds per key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// Hex SHA-256 of method, path and body.
    fingerprint: String,
    #[serde(flatten)]
    state: RecordState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum RecordState {
    InProgress {
        /// Milliseconds since the Unix epoch.
        started_at_ms: u64,
    },
    Done(StoredResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    /// Base64.
    body: String,
}

/// The middleware: applies to POST requests that carry an `Idempotency-Key`. It expects the body
/// to be buffered already (the body limit runs before it).
pub async fn layer(State(layer): State<Idempotency>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let mut keys = request.headers().get_all(IDEMPOTENCY_KEY).iter();
    let Some(raw_key) = keys.next() else {
        return next.run(request).await;
    };
    // Without valid credentials the request is refused further in; it learns nothing here.
    let Some(scope) = layer.scope(request.headers(), request.uri().path()) else {
        return next.run(request).await;
    };
    if keys.next().is_some() {
        return Problem::new(
            ProblemKind::ValidationFailed,
            "send one Idempotency-Key header, not several",
        )
        .into_response();
    }
    let key = match raw_key.to_str() {
        Ok(key) if valid_key(key) => key.to_owned(),
        _ => {
            return Problem::new(
                ProblemKind::ValidationFailed,
                format!("Idempotency-Key must be 1-{MAX_KEY_CHARS} visible ASCII characters"),
            )
            .into_response();
        }
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), |p| p.as_str().to_owned());

    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => return Problem::new(ProblemKind::MalformedRequest, "the body could not be read").into_response(),
    };
    let fingerprint = hex(&Sha256::new()
        .chain_update(parts.method.as_str())
        .chain_update(b"\n")
        .chain_update(path.as_bytes())
        .chain_update(b"\n")
        .chain_update(&body)
        .finalize());
    let record_key = hex(&Sha256::new()
        .chain_update(scope.label())
        .chain_update(b"\0")
        .chain_update(key.as_bytes())
        .finalize());
    let mut request = Request::from_parts(parts, Body::from(body));
    if let Scope::Tenant(tenant_id) = &scope {
        let command_id = hex(&Sha256::new()
            .chain_update(b"yy-command\0")
            .chain_update(scope.label())
            .chain_update(b"\0")
            .chain_update(key.as_bytes())
            .chain_update(b"\0")
            .chain_update(fingerprint.as_bytes())
            .finalize());
        request.extensions_mut().insert(CommandId {
            tenant_id: tenant_id.clone(),
            command_id,
        });
    }

    let bucket = match layer.bucket().await {
        Ok(bucket) => bucket.clone(),
        Err(problem) => return problem.into_response(),
    };
    let revision = match claim(&bucket, &record_key, &fingerprint).await {
        Ok(Claim::Claimed(revision)) => revision,
        Ok(Claim::Replay(stored)) => return replay(stored),
        Err(problem) => return problem.into_response(),
    };

    // Carried out on its own task, so that a client hanging up cannot abandon the claim halfway:
    // whatever was accepted is finished and its response recorded.
    let task = tokio::spawn(
        async move {
            let response = next.run(request).await;
            settle(&bucket, &record_key, revision, &fingerprint, response).await
        }
        .instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "an idempotent request's task failed");
            Problem::new(ProblemKind::Internal, "").into_response()
        }
    }
}

enum Claim {
    Claimed(u64),
    Replay(StoredResponse),
}

/// Claims `key` for a request with `fingerprint`, or finds why it cannot.
async fn claim(bucket: &KvBucket, key: &str, fingerprint: &str) -> Result<Claim, Problem> {
    let in_progress = || Record {
        fingerprint: fingerprint.to_owned(),
        state: RecordState::InProgress {
            started_at_ms: now_ms(),
        },
    };
    // Each round either settles or observes another writer's change; a few suffice.
    for _ in 0..5 {
        let existing = bucket.get(key).await.map_err(kv_problem)?;
        let Some(entry) = existing else {
            match bucket.create(key, encode(&in_progress())).await {
                Ok(revision) => return Ok(Claim::Claimed(revision)),
                Err(KvError::Conflict { .. }) => continue,
                Err(error) => return Err(kv_problem(error)),
            }
        };
        let record: Option<Record> = serde_json::from_slice(&entry.value).ok();
        let take_over = match record {
            Some(record) if record.fingerprint != fingerprint => {
                return Err(Problem::new(
                    ProblemKind::IdempotencyKeyReused,
                    "this Idempotency-Key was used with another request (method, path or body); use a new key",
                ));
            }
            Some(Record {
                state: RecordState::Done(stored),
                ..
            }) => return Ok(Claim::Replay(stored)),
            Some(Record {
                state: RecordState::InProgress { started_at_ms },
                ..
            }) => now_ms().saturating_sub(started_at_ms) >= STALE_AFTER.as_millis() as u64,
            // Unreadable: written by something else; claiming it again is the only way forward.
            None => true,
        };
        if !take_over {
            return Err(Problem::new(
                ProblemKind::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        match bucket.update(key, encode(&in_progress()), entry.revision).await {
            Ok(revision) => return Ok(Claim::Claimed(revision)),
            Err(KvError::Conflict { .. }) => continue,
            Err(error) => return Err(kv_problem(error)),
        }
    }
    Err(Problem::new(
        ProblemKind::IdempotencyKeyInUse,
        "requests with this Idempotency-Key keep racing; retry shortly",
    ))
}

/// Records `response` under the claimed key (or releases the key when the client may retry)
/// and returns it.
async fn settle(bucket: &KvBucket, key: &str, revision: u64, fingerprint: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a response to an idempotent request could not be buffered");
            release(bucket, key, revision).await;
            return Problem::new(ProblemKind::Internal, "").into_response();
        }
    };
    let retryable = parts.status.is_server_error() || is_conflict_problem(&parts.headers, &body);
    if retryable || parts.extensions.get::<ShownOnce>().is_some() {
        release(bucket, key, revision).await;
    } else {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let record = Record {
            fingerprint: fingerprint.to_owned(),
            state: RecordState::Done(StoredResponse {
                status: parts.status.as_u16(),
                content_type: header(header::CONTENT_TYPE),
                location: header(header::LOCATION),
                body: BASE64.encode(&body),
            }),
        };
        if let Err(error) = bucket.update(key, encode(&record), revision).await {
            // The change is done; a retry finds the claim stale and is answered by the
            // conversation service recognising the command id.
            tracing::warn!(%error, "the response to an idempotent request was not recorded");
        }
    }
    Response::from_parts(parts, Body::from(body))
}

async fn release(bucket: &KvBucket, key: &str, revision: u64) {
    if let Err(error) = bucket.delete(key, Some(revision)).await {
        tracing::warn!(%error, "an idempotency claim was not released; it expires on its own");
    }
}

fn replay(stored: StoredResponse) -> Response {
    let body = BASE64.decode(stored.body.as_bytes()).unwrap_or_default();
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(body)).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// A `conflict` problem says "retry": storing it would make every retry fail the same way.
fn is_conflict_problem(headers: &HeaderMap, body: &[u8]) -> bool {
    let is_problem = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    is_problem
        && serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .is_some_and(|doc| doc["type"] == format!("/problems/{}", ProblemKind::Conflict.slug()))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic())
}

fn encode(record: &Record) -> Bytes {
    serde_json::to_vec(record).unwrap_or_default().into()
}

fn kv_problem(error: KvError) -> Problem {
    tracing::warn!(%error, "idempotency records cannot be reached");
    unavailable()
}

fn unavailable() -> Problem {
    Problem::new(
        ProblemKind::Unavailable,
        "idempotency records cannot be reached; retry with the same Idempotency-Key",
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key("order-8812-attempt-1"));
        assert!(valid_key(&"k".repeat(MAX_KEY_CHARS)));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(MAX_KEY_CHARS + 1)));
        assert!(!valid_key("tab\there"));
        assert!(!valid_key("with space"));
        assert!(!valid_key("ключ"));
    }

    #[test]
    fn records_round_trip() {
        let record = Record {
            fingerprint: "ab".into(),
            state: RecordState::Done(StoredResponse {
                status: 201,
                content_type: Some("application/json".into()),
                location: Some("/v1/conversations/conv_1".into()),
                body: BASE64.encode(b"{}"),
            }),
        };
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(json["state"], "done");
        let back: Record = serde_json::from_value(json).expect("decode");
        assert!(matches!(
            back.state,
            RecordState::Done(StoredResponse { status: 201, .. })
        ));
    }

    #[test]
    fn only_conflict_problems_count_as_retryable() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let conflict = serde_json::to_vec(&Problem::new(ProblemKind::Conflict, "")).unwrap();
        let invalid = serde_json::to_vec(&Problem::new(ProblemKind::InvalidState, "")).unwrap();
        assert!(is_conflict_problem(&headers, &conflict));
        assert!(!is_conflict_problem(&headers, &invalid));
        assert!(!is_conflict_problem(&HeaderMap::new(), &conflict));
    }
}
