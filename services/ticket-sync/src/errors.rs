//! gRPC answers for what the ticket API refuses, each with its `yy-error` slug (the REST problem
//! type the gateway maps it to).

use tonic::{Code, Status};

use crate::domain::Rejection;

fn status(code: Code, slug: &'static str, message: String) -> Status {
    yy_runtime::error_status(code, slug, message)
}

/// Malformed input; the message names the field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    status(Code::InvalidArgument, "validation-failed", format!("{field}: {reason}"))
}

/// Something that does not exist (or belongs to another tenant).
pub fn not_found(what: &str, id: &str) -> Status {
    status(Code::NotFound, "not-found", format!("{what} {id} not found"))
}

/// A command the state forbids.
pub fn invalid_state(message: impl Into<String>) -> Status {
    status(Code::FailedPrecondition, "invalid-state", message.into())
}

/// Concurrent changes kept winning.
pub fn conflict(message: &str) -> Status {
    status(Code::Aborted, "conflict", message.to_owned())
}

/// An inbound webhook whose signature does not verify.
pub fn invalid_signature(message: &str) -> Status {
    status(Code::Unauthenticated, "invalid-signature", message.to_owned())
}

/// The log, an upstream service or an external system cannot be reached.
pub fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "ticket-sync unavailable");
    status(Code::Unavailable, "unavailable", format!("{error}; retry"))
}

/// What the ticket aggregate refused.
pub fn rejected(rejection: Rejection, ticket_id: &str) -> Status {
    match rejection {
        Rejection::Invalid { field, reason } => invalid(&field, reason),
        Rejection::NotFound(_) => not_found("ticket", ticket_id),
        Rejection::InvalidState(message) => invalid_state(message),
    }
}
