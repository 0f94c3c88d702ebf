//! Tenants and API keys.

use yy_runtime::{RunError, Started};

use crate::AppState;
use crate::config::AuthConfig;

/// Who a request acts for, established from its API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's tenant.
    pub tenant_id: String,
    /// The key.
    pub key_id: String,
}

/// Tenants and API keys, rebuilt from the IAM log.
#[derive(Debug, Clone)]
pub struct Iam {}

impl Iam {
    /// Rebuilds tenants and keys from the log and follows it.
    pub async fn start(_started: &Started, _config: &AuthConfig) -> Result<Iam, RunError> {
        Ok(Iam {})
    }

    /// The principal of a valid, unrevoked API key.
    pub fn authenticate(&self, _api_key: &str) -> Option<Principal> {
        None
    }

    /// `/admin/v1/…`.
    pub fn admin_routes(&self) -> axum::Router<AppState> {
        axum::Router::new()
    }
}

/// The OpenAPI description of the admin routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::default()
}
