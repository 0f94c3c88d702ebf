//! RFC 9457 problem details: every error the REST API returns.
//!
//! `type` is a stable relative URI, `/problems/<slug>`; clients match on it, never on `title` or
//! `detail`, which are for people and may change.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of problem the API reports, each with a stable `type` and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The body is not valid JSON (or not UTF-8).
    MalformedRequest,
    /// The body is JSON of the wrong shape, or a value is out of range; `detail` names the field.
    ValidationFailed,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The request body is larger than the configured limit.
    RequestTooLarge,
    /// A message's text is larger than the configured limit.
    MessageTooLarge,
    /// No valid credentials.
    Unauthorized,
    /// The resource does not exist, or belongs to another tenant.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The route speaks WebSocket and the request is not an upgrade.
    UpgradeRequired,
    /// The resource's state forbids the command (such as rating an open conversation).
    InvalidState,
    /// Concurrent changes kept conflicting; retrying is safe.
    Conflict,
    /// The `Idempotency-Key` was used before with another request.
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being processed.
    IdempotencyKeyInUse,
    /// A service behind the gateway cannot be reached; retrying later is safe.
    Unavailable,
    /// An unexpected failure; it is logged with the request id.
    Internal,
}

impl ProblemKind {
    /// The slug in `type` (`/problems/<slug>`).
    pub fn slug(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "malformed-request",
            ProblemKind::ValidationFailed => "validation-failed",
            ProblemKind::UnsupportedMediaType => "unsupported-media-type",
            ProblemKind::RequestTooLarge => "request-too-large",
            ProblemKind::MessageTooLarge => "message-too-large",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::UpgradeRequired => "upgrade-required",
            ProblemKind::InvalidState => "invalid-state",
            ProblemKind::Conflict => "conflict",
            ProblemKind::IdempotencyKeyReused => "idempotency-key-reused",
            ProblemKind::IdempotencyKeyInUse => "idempotency-key-in-use",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemKind::MalformedRequest => StatusCode::BAD_REQUEST,
            ProblemKind::ValidationFailed | ProblemKind::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemKind::RequestTooLarge | ProblemKind::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemKind::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ProblemKind::InvalidState | ProblemKind::Conflict | ProblemKind::IdempotencyKeyInUse => {
                StatusCode::CONFLICT
            }
            ProblemKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed summary.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::MalformedRequest => "The request body is not valid JSON",
            ProblemKind::ValidationFailed => "The request is not valid",
            ProblemKind::UnsupportedMediaType => "The request body must be application/json",
            ProblemKind::RequestTooLarge => "The request body is too large",
            ProblemKind::MessageTooLarge => "The message is too large",
            ProblemKind::Unauthorized => "Missing or invalid credentials",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::UpgradeRequired => "This route needs a WebSocket upgrade",
            ProblemKind::InvalidState => "The resource's state does not allow this",
            ProblemKind::Conflict => "Concurrent changes conflicted; retry",
            ProblemKind::IdempotencyKeyReused => "The Idempotency-Key was used with another request",
            ProblemKind::IdempotencyKeyInUse => "A request with this Idempotency-Key is in progress",
            ProblemKind::Unavailable => "Temporarily unavailable; retry",
            ProblemKind::Internal => "Internal error",
        }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: [ProblemKind; 15] = [
        ProblemKind::MalformedRequest,
        ProblemKind::ValidationFailed,
        ProblemKind::UnsupportedMediaType,
        ProblemKind::RequestTooLarge,
        ProblemKind::MessageTooLarge,
        ProblemKind::Unauthorized,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::UpgradeRequired,
        ProblemKind::InvalidState,
        ProblemKind::Conflict,
        ProblemKind::IdempotencyKeyReused,
        ProblemKind::IdempotencyKeyInUse,
        ProblemKind::Unavailable,
        ProblemKind::Internal,
    ];
}

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<slug>`: stable, for programs.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind, for people.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip)]
    kind: Option<ProblemKind>,
}

impl Problem {
    /// A problem of `kind` with a `detail` for this occurrence.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Problem {
            type_uri: format!("/problems/{}", kind.slug()),
            title: kind.title().into(),
            status: kind.status().as_u16(),
            detail: (!detail.is_empty()).then_some(detail),
            kind: Some(kind),
        }
    }

    /// The kind, for code that branches on it.
    pub fn kind(&self) -> Option<ProblemKind> {
        self.kind
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_documents_carry_them() {
        let mut slugs: Vec<_> = ProblemKind::ALL.iter().map(|k| k.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemKind::ALL.len());
        let problem = Problem::new(ProblemKind::NotFound, "no conversation conv_1");
        let json = serde_json::to_value(&problem).expect("json");
        assert_eq!(json["type"], "/problems/not-found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["detail"], "no conversation conv_1");
    }
}
