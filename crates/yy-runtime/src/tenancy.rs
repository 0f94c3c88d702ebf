//! The tenant a gRPC call acts for, carried in the `x-yy-tenant` metadata (see
//! `yy_proto::metadata::TENANT`): the gateway sets it after authenticating, services inside the
//! cluster set it when they call each other on a tenant's behalf, and every service reads it here.

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};
use yy_eventlog::validate_token;
use yy_proto::metadata::TENANT;

/// The tenant `request` acts for: UNAUTHENTICATED when it is missing or not a valid token (a
/// tenant becomes part of subjects, so anything else must never reach the log).
pub fn tenant_of<T>(request: &Request<T>) -> Result<String, Status> {
    let tenant = request
        .metadata()
        .get(TENANT)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Status::unauthenticated("x-yy-tenant is required"))?;
    validate_token("tenant", tenant).map_err(|e| Status::unauthenticated(e.to_string()))?;
    Ok(tenant.to_owned())
}

/// A request carrying `message` on behalf of `tenant`. A tenant that cannot be metadata (never
/// one that passed [`tenant_of`] or came from the log) is left out, and the callee refuses the
/// call as unauthenticated.
pub fn for_tenant<T>(tenant: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(tenant) {
        request.metadata_mut().insert(TENANT, value);
    }
    request
}

/// A gRPC error with its `yy-error` slug (see `yy_proto::metadata::ERROR_KIND`): the kind of
/// failure, stable across messages, which the gateway maps to the REST problem type.
pub fn error_status(code: tonic::Code, slug: &'static str, message: impl Into<String>) -> Status {
    let mut status = Status::new(code, message.into());
    status
        .metadata_mut()
        .insert(yy_proto::metadata::ERROR_KIND, MetadataValue::from_static(slug));
    status
}
