//! Who a REST request acts for, and the id under which its command is carried out.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tonic::metadata::MetadataValue;

use crate::AppState;
use crate::iam::Principal;
use crate::rest::idempotency::CommandId;
use crate::rest::layers::{REQUEST_ID, RequestId};

/// The authenticated caller of a REST route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's principal.
    pub principal: Principal,
    /// The command id to pass upstream: derived from the tenant and the request's
    /// `Idempotency-Key`, so that a retried request is carried out once even when its first
    /// attempt stored the change but not the response; empty (the service picks one) without a
    /// key.
    pub command_id: String,
    /// The request's id, passed upstream to correlate the events it causes.
    pub request_id: Option<String>,
}

impl Caller {
    /// `message` as a request on behalf of this caller's tenant, carrying the request id.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = crate::upstream::for_tenant(&self.principal.tenant_id, message);
        if let Some(value) = self
            .request_id
            .as_deref()
            .and_then(|id| MetadataValue::try_from(id).ok())
        {
            request.metadata_mut().insert(REQUEST_ID, value);
        }
        request
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        // The idempotency layer derives the id from the same credentials the principal came from.
        let command_id = parts
            .extensions
            .get::<CommandId>()
            .filter(|id| id.tenant_id == principal.tenant_id)
            .map(|id| id.command_id.clone())
            .unwrap_or_default();
        let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
        Ok(Caller {
            principal,
            command_id,
            request_id,
        })
    }
}
