//! gRPC answers for what the routing API refuses, each with its `yy-error` slug (the REST
//! problem type the gateway maps it to).

use tonic::{Code, Status};
use yy_dispatch::Rejection;

fn status(code: Code, slug: &'static str, message: String) -> Status {
    yy_runtime::error_status(code, slug, message)
}

/// Malformed input; the message names the field.
pub fn invalid(field: &str, reason: &str) -> Status {
    status(Code::InvalidArgument, "validation-failed", format!("{field}: {reason}"))
}

/// Something that does not exist (or belongs to another tenant).
pub fn not_found(what: &str, id: &str) -> Status {
    status(Code::NotFound, "not-found", format!("{what} {id} not found"))
}

/// A command the state forbids.
pub fn precondition(message: &str) -> Status {
    status(Code::FailedPrecondition, "invalid-state", message.to_owned())
}

/// The log or a service behind us cannot be reached.
pub fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "routing unavailable");
    status(
        Code::Unavailable,
        "unavailable",
        format!("routing is unavailable: {error}; retry"),
    )
}

/// What the dispatcher refused.
pub fn rejected(rejection: Rejection) -> Status {
    let message = rejection.to_string();
    match rejection {
        Rejection::Invalid { .. } => status(Code::InvalidArgument, "validation-failed", message),
        Rejection::UnknownAgent { .. } | Rejection::UnknownQueue { .. } => status(Code::NotFound, "not-found", message),
        Rejection::AgentExists { .. } => status(Code::AlreadyExists, "conflict", message),
        Rejection::UnknownConversation { .. }
        | Rejection::AlreadyQueued { .. }
        | Rejection::NotOffered { .. }
        | Rejection::NotAssigned { .. }
        | Rejection::AgentUnavailable { .. } => status(Code::FailedPrecondition, "invalid-state", message),
    }
}
