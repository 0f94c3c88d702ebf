//! Tenants and API keys.
//!
//! Each tenant is one aggregate (`tenant`, id `ten_…`) of the IAM log, holding its API keys. The
//! gateway is the only writer; its projection of the log ([`Iam`]) answers every authentication
//! from memory. An API key is shown once, when it is issued: the log and snapshots hold only its
//! HMAC under `auth.key_secret`.
//!
//! Writes wait until the projection has applied them, so the next request (to any handler of
//! this gateway) sees the change: a key works as soon as its creation is answered, and is refused
//! as soon as its revocation is.

mod admin;
mod directory;
mod secrets;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use yy_eventlog::{
    AppendError, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, partition_of,
};
use yy_runtime::{ConfigError, RunError, Started};

use crate::AppState;
use crate::config::AuthConfig;
use crate::problem::{Problem, ProblemKind};
use directory::{Directory, Tenant};
use secrets::{AdminToken, KeyHasher};

pub use admin::openapi;

/// The aggregate type of tenants in the IAM log. Stable: renaming it would orphan history.
pub const TENANT_AGGREGATE: &str = "tenant";

/// How many times a write is decided again after losing a race with another write to the same
/// tenant before the request is answered with a conflict.
const MAX_ATTEMPTS: usize = 8;

/// How long a request waits for the projection (to apply its write, or to finish replaying the
/// log after a start) before answering 503.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a request acts for, established from its API key.
///
/// As an extractor (for [`AppState`] routes) it reads `Authorization: Bearer <api key>` and
/// rejects the request with a 401 problem document and `WWW-Authenticate: Bearer` when the header
/// is missing or the key is unknown or revoked; with a 503 problem instead while the gateway is
/// still replaying the IAM log after a start, when an unknown key may yet turn out valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's tenant.
    pub tenant_id: String,
    /// The key.
    pub key_id: String,
}

/// Tenants and API keys, rebuilt from the IAM log and kept following it. Cheap to clone.
#[derive(Clone)]
pub struct Iam {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    directory: Follower<Directory>,
    hasher: KeyHasher,
    /// `None` when no admin token is configured: the admin API is then absent.
    admin: Option<AdminToken>,
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iam")
            .field("admin_api", &self.inner.admin.is_some())
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Iam {
    fn from_ref(state: &AppState) -> Iam {
        state.iam.clone()
    }
}

impl Iam {
    /// Rebuilds tenants and keys from the latest snapshot plus the IAM log, follows it (counted
    /// towards readiness) and saves snapshots periodically and at shutdown.
    pub async fn start(started: &Started, config: &AuthConfig) -> Result<Iam, RunError> {
        let invalid = |what: &str| RunError::Config(ConfigError::Invalid(format!("{what} cannot key an HMAC")));
        let hasher = KeyHasher::new(config.key_secret.expose().as_bytes()).map_err(|_| invalid("auth.key_secret"))?;
        let admin = if config.admin_token.is_empty() {
            None
        } else {
            Some(AdminToken::new(config.admin_token.expose()).map_err(|_| invalid("auth.admin_token"))?)
        };
        let directory = started
            .follow_with_snapshots(LogContext::IAM, Directory::default())
            .await?;
        Ok(Iam {
            inner: Arc::new(Inner {
                log: started.log.clone(),
                directory,
                hasher,
                admin,
            }),
        })
    }

    /// The principal of a valid, unrevoked API key of an existing tenant; `None` for anything
    /// else. Reads memory only.
    pub fn authenticate(&self, api_key: &str) -> Option<Principal> {
        if !secrets::looks_like_key(api_key) {
            return None;
        }
        let hash = self.inner.hasher.hash(api_key);
        let applied = self.inner.directory.read();
        let found = applied.state.key_by_hash(&hash)?;
        if found.revoked || applied.state.tenant(&found.tenant_id).is_none() {
            return None;
        }
        Some(Principal {
            tenant_id: found.tenant_id.clone(),
            key_id: found.key_id.clone(),
        })
    }

    /// `/admin/v1/…`, guarded by `Authorization: Bearer <auth.admin_token>`. When no admin token
    /// is configured, every path under `/admin` answers 404.
    pub fn admin_routes(&self) -> axum::Router<AppState> {
        admin::routes(self, self.inner.admin.is_some())
    }

    /// True when the admin API is configured and `token` is its token (compared in constant time).
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        self.inner.admin.as_ref().is_some_and(|admin| admin.matches(token))
    }

    /// Creates a tenant named `name`.
    async fn create_tenant(&self, name: String, correlation_id: String) -> Result<Tenant, Problem> {
        let tenant_id = format!("ten_{}", uuid::Uuid::now_v7().simple());
        let command = Command::new(&tenant_id, correlation_id);
        self.write(&command, |tenant| match tenant {
            Some(_) => Err(Problem::new(ProblemKind::Conflict, "the tenant id is taken; retry")),
            None => Ok(Some((
                Expected::NoStream,
                Payload::TenantCreated(yy_proto::iam::v1::TenantCreated { name: name.clone() }),
            ))),
        })
        .await?;
        tracing::info!(tenant_id, "tenant created");
        self.applied_tenant(&tenant_id)
            .ok_or_else(|| internal("a created tenant is missing from the projection"))
    }

    /// Issues a key named `name` to `tenant_id`: the key, shown once, and its metadata.
    async fn issue_key(
        &self,
        tenant_id: &str,
        name: String,
        correlation_id: String,
    ) -> Result<(String, directory::ApiKey), Problem> {
        let key = secrets::generate_key();
        let key_id = format!("key_{}", uuid::Uuid::now_v7().simple());
        let issued = yy_proto::iam::v1::ApiKeyIssued {
            key_id: key_id.clone(),
            name,
            display_prefix: secrets::display_prefix(&key),
            key_hash: self.inner.hasher.hash(&key).to_vec(),
        };
        let command = Command::new(tenant_id, correlation_id);
        self.write(&command, |tenant| {
            let tenant = tenant.ok_or_else(|| no_tenant(tenant_id))?;
            Ok(Some((
                Expected::LastSequence(tenant.last_sequence),
                Payload::ApiKeyIssued(issued.clone()),
            )))
        })
        .await?;
        tracing::info!(tenant_id, key_id, "API key issued");
        let metadata = self
            .applied_tenant(tenant_id)
            .and_then(|t| t.keys.get(&key_id).cloned())
            .ok_or_else(|| internal("an issued key is missing from the projection"))?;
        Ok((key, metadata))
    }

    /// Revokes a key of `tenant_id`; revoking a revoked key changes nothing and succeeds.
    async fn revoke_key(&self, tenant_id: &str, key_id: &str, correlation_id: String) -> Result<(), Problem> {
        let command = Command::new(tenant_id, correlation_id);
        let revoked = self
            .write(&command, |tenant| {
                let tenant = tenant.ok_or_else(|| no_tenant(tenant_id))?;
                let key = tenant.keys.get(key_id).ok_or_else(|| no_key(tenant_id, key_id))?;
                if key.revoked_at.is_some() {
                    return Ok(None);
                }
                Ok(Some((
                    Expected::LastSequence(tenant.last_sequence),
                    Payload::ApiKeyRevoked(yy_proto::iam::v1::ApiKeyRevoked {
                        key_id: key_id.to_owned(),
                    }),
                )))
            })
            .await?;
        if revoked {
            tracing::info!(tenant_id, key_id, "API key revoked");
        }
        Ok(())
    }

    /// A copy of one tenant's state, once the projection has replayed the log.
    async fn tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, Problem> {
        self.caught_up().await?;
        Ok(self.applied_tenant(tenant_id))
    }

    /// A copy of every tenant, oldest first, once the projection has replayed the log.
    async fn tenants(&self) -> Result<Vec<Tenant>, Problem> {
        self.caught_up().await?;
        Ok(self.inner.directory.read().state.tenants().cloned().collect())
    }

    fn applied_tenant(&self, tenant_id: &str) -> Option<Tenant> {
        self.inner.directory.read().state.tenant(tenant_id).cloned()
    }

    /// Waits until the projection has replayed the log up to where it was at start: before
    /// that, a tenant may look missing only because its commits were not read yet.
    async fn caught_up(&self) -> Result<(), Problem> {
        tokio::time::timeout(APPLY_TIMEOUT, self.inner.directory.caught_up())
            .await
            .map_err(|_| {
                Problem::new(
                    ProblemKind::Unavailable,
                    "the gateway is still reading tenants and keys; retry shortly",
                )
            })
    }

    /// Decides from the tenant's current state (`None` when it does not exist) what to append,
    /// appends it and waits until the projection applied it. `decide` answers `Ok(None)` when
    /// there is nothing to do. When another write to the tenant came first, the projection is
    /// brought up to that write and `decide` runs again, up to [`MAX_ATTEMPTS`] times.
    ///
    /// Returns whether anything was appended.
    async fn write<F>(&self, command: &Command, mut decide: F) -> Result<bool, Problem>
    where
        F: FnMut(Option<&Tenant>) -> Result<Option<(Expected, Payload)>, Problem>,
    {
        let tenant_id = command.tenant_id.as_str();
        self.caught_up().await?;
        for _ in 0..MAX_ATTEMPTS {
            let decision = {
                let applied = self.inner.directory.read();
                decide(applied.state.tenant(tenant_id))?
            };
            let Some((expected, payload)) = decision else {
                return Ok(false);
            };
            match self.inner.log.append(command.commit(payload), expected).await {
                Ok(appended) => {
                    self.await_applied(appended.partition, appended.sequence).await?;
                    return Ok(true);
                }
                Err(AppendError::Conflict { expected, .. }) => self.await_newer_commits(tenant_id, expected).await?,
                Err(error) => {
                    tracing::error!(%error, tenant_id, "appending to the IAM log failed");
                    return Err(Problem::new(
                        ProblemKind::Unavailable,
                        "the event log did not confirm the change; it may or may not have been made",
                    ));
                }
            }
        }
        Err(Problem::new(
            ProblemKind::Conflict,
            "the tenant kept changing concurrently; retry",
        ))
    }

    /// Waits until the projection has applied every commit of the tenant after `after`.
    async fn await_newer_commits(&self, tenant_id: &str, after: u64) -> Result<(), Problem> {
        let log = &self.inner.log;
        let (_, last) = log
            .load_after(LogContext::IAM, tenant_id, tenant_id, after)
            .await
            .map_err(|error| {
                tracing::error!(%error, tenant_id, "reading a tenant from the IAM log failed");
                Problem::new(ProblemKind::Unavailable, "the event log cannot be read")
            })?;
        let partition = partition_of(tenant_id, log.config().partitions);
        self.await_applied(partition, last).await
    }

    async fn await_applied(&self, partition: u32, sequence: u64) -> Result<(), Problem> {
        tokio::time::timeout(APPLY_TIMEOUT, self.inner.directory.applied(partition, sequence))
            .await
            .map_err(|_| {
                tracing::error!(
                    partition,
                    sequence,
                    "the IAM projection did not apply a stored change in time"
                );
                Problem::new(
                    ProblemKind::Unavailable,
                    "the change was stored but is not visible yet; check again shortly",
                )
            })
    }
}

/// One command on a tenant: the ids its events carry, fixed across retries so that the log
/// recognises a retried append of the same command.
struct Command {
    tenant_id: String,
    command_id: String,
    correlation_id: String,
}

impl Command {
    fn new(tenant_id: &str, correlation_id: String) -> Self {
        let command_id = uuid::Uuid::now_v7().to_string();
        Command {
            tenant_id: tenant_id.to_owned(),
            correlation_id: if correlation_id.is_empty() {
                command_id.clone()
            } else {
                correlation_id
            },
            command_id,
        }
    }

    fn commit(&self, payload: Payload) -> NewCommit {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // Millisecond precision: enough to order changes, and shorter in every response.
        let occurred_at = prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: (now.subsec_millis() * 1_000_000) as i32,
        };
        NewCommit {
            context: LogContext::IAM,
            tenant_id: self.tenant_id.clone(),
            aggregate_id: self.tenant_id.clone(),
            command_id: self.command_id.clone(),
            events: vec![EventEnvelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                tenant_id: self.tenant_id.clone(),
                aggregate_type: TENANT_AGGREGATE.into(),
                aggregate_id: self.tenant_id.clone(),
                occurred_at: Some(occurred_at),
                correlation_id: self.correlation_id.clone(),
                causation_id: self.command_id.clone(),
                traceparent: String::new(),
                schema_version: 1,
                payload: Some(payload),
            }],
            trace: None,
        }
    }
}

/// The request id of a request, when it has a usable one: visible ASCII, at most 128 bytes.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(crate::rest::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_default()
        .to_owned()
}

/// The credentials of `Authorization: Bearer <credentials>` (the scheme is case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

/// A 401 problem document with `WWW-Authenticate: Bearer`.
fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(ProblemKind::Unauthorized, detail).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn no_tenant(tenant_id: &str) -> Problem {
    Problem::new(ProblemKind::NotFound, format!("no tenant {}", shorten(tenant_id)))
}

fn no_key(tenant_id: &str, key_id: &str) -> Problem {
    Problem::new(
        ProblemKind::NotFound,
        format!("tenant {} has no API key {}", shorten(tenant_id), shorten(key_id)),
    )
}

fn internal(what: &str) -> Problem {
    tracing::error!("{what}");
    Problem::new(ProblemKind::Internal, "")
}

/// Caps an id taken from a request before it is echoed in a problem document.
fn shorten(id: &str) -> String {
    id.chars().take(64).collect()
}

/// RFC 3339 in UTC, such as `2026-01-31T09:30:00.123Z`.
fn rfc3339(timestamp: prost_types::Timestamp) -> String {
    timestamp.to_string()
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = bearer(&parts.headers).and_then(|key| state.iam.authenticate(key)) {
            return Ok(principal);
        }
        if !state.iam.inner.directory.is_caught_up() {
            return Err(Problem::new(
                ProblemKind::Unavailable,
                "the gateway is still reading API keys; retry shortly",
            )
            .into_response());
        }
        Err(unauthorized(
            "a valid API key is required: `Authorization: Bearer yy_…`",
        ))
    }
}
