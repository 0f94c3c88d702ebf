//! The `[webhook]` section.

use serde::Deserialize;
use yy_runtime::{ConfigError, Extra, Secret};

use crate::guard::{AddressPolicy, Cidr};

/// The webhook service's own section: `[webhook]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Deliveries, retries and protection.
    pub webhook: WebhookSettings,
}

/// Deliveries, retries and protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Seals endpoints' signing secrets in the log (at least 32 characters of high entropy).
    /// Endpoints cannot be created while it is unset; changing it makes stored secrets unreadable.
    pub secret_key: Secret,
    /// Seconds to wait before each retry after a failed attempt: the first retry after the first
    /// number, and so on. A message is given up after the last.
    pub retry_schedule_secs: Vec<u64>,
    /// Each delay is spread by up to this fraction either way, so retries of many messages do
    /// not arrive together.
    pub retry_jitter: f64,
    /// Seconds of schedule per real second: 1 in production; tests and drills raise it so that
    /// hours of retries pass in seconds. Scales retries, `Retry-After` and `disable_after_days`.
    pub time_scale: f64,
    /// How long an attempt may take, in seconds, connecting included.
    pub timeout_secs: u64,
    /// Networks deliveries may reach although they are loopback, private or link-local, such as
    /// `["10.20.0.0/16"]`.
    pub allow_cidrs: Vec<String>,
    /// An endpoint whose every attempt failed for this many days is disabled.
    pub disable_after_days: f64,
    /// Attempts in flight per endpoint at most.
    pub max_in_flight_per_endpoint: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            secret_key: Secret::default(),
            retry_schedule_secs: vec![5, 300, 1_800, 7_200, 18_000, 36_000, 36_000],
            retry_jitter: 0.2,
            time_scale: 1.0,
            timeout_secs: 15,
            allow_cidrs: Vec::new(),
            disable_after_days: 5.0,
            max_in_flight_per_endpoint: 32,
        }
    }
}

impl WebhookSettings {
    /// The address policy the allowlist describes.
    pub fn policy(&self) -> Result<AddressPolicy, ConfigError> {
        let allow = self
            .allow_cidrs
            .iter()
            .map(|c| Cidr::parse(c).map_err(|e| ConfigError::Invalid(format!("webhook.allow_cidrs: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AddressPolicy::new(allow))
    }
}

impl Extra for WebhookConfig {
    const SECTIONS: &'static [&'static str] = &["webhook"];

    fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.webhook;
        let invalid = |message: &str| Err(ConfigError::Invalid(format!("webhook.{message}")));
        if !w.secret_key.is_empty() && w.secret_key.expose().len() < 32 {
            return invalid("secret_key must be at least 32 characters");
        }
        if w.retry_schedule_secs.len() > 50 || w.retry_schedule_secs.iter().any(|s| *s > 30 * 86_400) {
            return invalid("retry_schedule_secs: at most 50 delays of at most 30 days each");
        }
        if !(w.retry_jitter.is_finite() && (0.0..=0.5).contains(&w.retry_jitter)) {
            return invalid("retry_jitter must be between 0 and 0.5");
        }
        if !(w.time_scale.is_finite() && (0.001..=1_000_000.0).contains(&w.time_scale)) {
            return invalid("time_scale must be between 0.001 and 1000000");
        }
        if !(1..=300).contains(&w.timeout_secs) {
            return invalid("timeout_secs must be 1 to 300");
        }
        if !(w.disable_after_days.is_finite() && w.disable_after_days > 0.0) {
            return invalid("disable_after_days must be more than 0");
        }
        if !(1..=1_024).contains(&w.max_in_flight_per_endpoint) {
            return invalid("max_in_flight_per_endpoint must be 1 to 1024");
        }
        w.policy().map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use yy_runtime::load_config;

    use super::*;

    #[test]
    fn the_section_loads_and_mistakes_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_WEBHOOK__WEBHOOK__TIME_SCALE", "3600");
            jail.set_env("YY_WEBHOOK__WEBHOOK__ALLOW_CIDRS", "[\"127.0.0.1/32\"]");
            let config = load_config::<WebhookConfig>("webhook", None).map_err(|e| e.to_string())?;
            assert_eq!(config.extra.webhook.time_scale, 3600.0);
            assert_eq!(config.extra.webhook.retry_schedule_secs.len(), 7);
            assert!(
                config
                    .extra
                    .webhook
                    .policy()
                    .expect("policy")
                    .permits("127.0.0.1".parse().unwrap())
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_WEBHOOK__WEBHOOK__TIMEOUT", "5");
            let error = load_config::<WebhookConfig>("webhook", None).expect_err("unknown key");
            assert!(error.to_string().contains("timeout"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_WEBHOOK__WEBHOOK__ALLOW_CIDRS", "[\"10.0.0.0/40\"]");
            let error = load_config::<WebhookConfig>("webhook", None).expect_err("bad cidr");
            assert!(error.to_string().contains("webhook.allow_cidrs"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_WEBHOOK__WEBHOOK__SECRET_KEY", "short");
            let error = load_config::<WebhookConfig>("webhook", None).expect_err("short key");
            assert!(error.to_string().contains("webhook.secret_key"), "{error}");
            Ok(())
        });
    }
}
