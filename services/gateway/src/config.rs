//! The gateway's own settings: sections `[auth]`, `[upstream]` and `[api]` beside the common ones.

use serde::Deserialize;
use yy_runtime::{ConfigError, Extra, Secret};

/// The gateway's sections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Authentication.
    pub auth: AuthConfig,
    /// Where the services behind the gateway listen.
    pub upstream: UpstreamConfig,
    /// Limits and retention of the public API.
    pub api: ApiConfig,
}

impl Extra for GatewayConfig {
    const SECTIONS: &'static [&'static str] = &["auth", "upstream", "api"];

    fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.key_secret.expose().len() < 32 {
            return Err(ConfigError::Invalid(
                "auth.key_secret must be set to at least 32 characters (it keys the hashes of API keys)".into(),
            ));
        }
        let token = &self.auth.admin_token;
        if !token.is_empty() && token.expose().len() < 16 {
            return Err(ConfigError::Invalid(
                "auth.admin_token must be at least 16 characters".into(),
            ));
        }
        if !(1..=86_400 * 30).contains(&self.api.idempotency_ttl_secs) || self.api.idempotency_ttl_secs < 86_400 {
            return Err(ConfigError::Invalid(
                "api.idempotency_ttl_secs must be between 86400 (24 h) and 2592000 (30 days)".into(),
            ));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("api.max_body_bytes must be at least 1024".into()));
        }
        Ok(())
    }
}

/// Authentication settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The bootstrap admin token for `/admin/v1` (tenants and API keys). The admin API answers
    /// 404 when it is not set.
    pub admin_token: Secret,
    /// The key of the HMAC under which API keys are hashed; at least 32 characters. Changing it
    /// invalidates every issued key.
    pub key_secret: Secret,
}

/// Where the services behind the gateway listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The conversation service's gRPC URL.
    pub conversation: String,
    /// The routing service's gRPC URL.
    pub routing: String,
    /// The webhook service's gRPC URL.
    pub webhook: String,
    /// The ticket-sync service's gRPC URL.
    pub ticket_sync: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            conversation: "http://127.0.0.1:9091".into(),
            routing: "http://127.0.0.1:9092".into(),
            webhook: "http://127.0.0.1:9094".into(),
            ticket_sync: "http://127.0.0.1:9093".into(),
        }
    }
}

/// Limits and retention of the public API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` and its response are kept, in seconds (at least 24 h).
    pub idempotency_ttl_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            idempotency_ttl_secs: 86_400,
        }
    }
}
