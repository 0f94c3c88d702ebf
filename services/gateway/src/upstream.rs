//! Calls to the services behind the gateway, made on behalf of an authenticated tenant.

use tonic::transport::{Channel, Endpoint};
use yy_runtime::RunError;

use crate::problem::{Problem, ProblemKind};

pub use yy_proto::metadata::{ERROR_KIND as ERROR_KIND_METADATA, TENANT as TENANT_METADATA};

/// A channel to `url` that connects on first use and reconnects by itself, so the gateway can
/// start before the services behind it.
pub fn channel(url: &str) -> Result<Channel, RunError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| RunError::Serve(format!("upstream URL {url:?}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30));
    Ok(endpoint.connect_lazy())
}

/// Wraps a message in a request acting for a tenant.
pub use yy_runtime::for_tenant;

impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        problem(&status)
    }
}

/// The problem document for a failed call.
pub fn problem(status: &tonic::Status) -> Problem {
    let named = status
        .metadata()
        .get(ERROR_KIND_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|slug| ProblemKind::ALL.into_iter().find(|k| k.slug() == slug));
    let kind = named.unwrap_or(match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ProblemKind::ValidationFailed,
        tonic::Code::NotFound => ProblemKind::NotFound,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => ProblemKind::InvalidState,
        tonic::Code::Aborted => ProblemKind::Conflict,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ProblemKind::Unavailable,
        tonic::Code::Unauthenticated => ProblemKind::Unauthorized,
        _ => ProblemKind::Internal,
    });
    if kind == ProblemKind::Internal {
        tracing::error!(code = ?status.code(), message = status.message(), "upstream call failed");
        return Problem::new(kind, "");
    }
    Problem::new(kind, status.message())
}
