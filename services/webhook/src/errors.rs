//! gRPC answers for what the webhook API refuses, each with its `yy-error` slug (the REST problem
//! type the gateway maps it to).

use tonic::{Code, Status};

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

/// Another writer kept winning.
pub fn conflict(message: &str) -> Status {
    status(Code::Aborted, "conflict", message.to_owned())
}

/// The log cannot be reached.
pub fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "webhook unavailable");
    status(
        Code::Unavailable,
        "unavailable",
        format!("webhooks are unavailable: {error}; retry"),
    )
}
