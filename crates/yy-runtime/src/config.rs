//! Typed, layered configuration.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::{Figment, Provider as _};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use yy_eventlog::{LogConfig, NatsConfig};

/// Why a config could not be loaded. Printed as is before the process exits with code 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file, variable or value is missing, malformed or of the wrong type; the message names
    /// the key and where it came from.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A service's own settings, beside the ones every service has: whole sections, such as the
/// gateway's `[auth]`, flattened into the service's config.
pub trait Extra: DeserializeOwned + Default + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The top-level keys (sections) it adds; any other unknown key is an error.
    const SECTIONS: &'static [&'static str];

    /// Checks what serde cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// No settings beyond the common ones.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct NoExtra {}

impl Extra for NoExtra {
    const SECTIONS: &'static [&'static str] = &[];
}

/// The settings every service has, and the service's own (`extra`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServiceConfig<X = NoExtra> {
    /// How to reach NATS.
    pub nats: NatsConfig,
    /// The event log's layout.
    pub eventlog: LogConfig,
    /// The HTTP server: `/healthz`, `/readyz`, `/metrics` and, on the gateway, the REST API.
    pub http: ListenConfig,
    /// The gRPC server.
    pub grpc: ListenConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// How long shutdown waits for in-flight work before it stops anyway, in seconds.
    pub shutdown_grace_secs: u64,
    /// How often in-memory state is snapshotted (when it changed), in seconds.
    pub snapshot_interval_secs: u64,
    /// The service's own sections.
    #[serde(flatten)]
    pub extra: X,
}

/// The keys [`ServiceConfig`] itself has; [`load_config`] refuses others unless `Extra` names them.
const COMMON_KEYS: &[&str] = &[
    "nats",
    "eventlog",
    "http",
    "grpc",
    "telemetry",
    "shutdown_grace_secs",
    "snapshot_interval_secs",
];

impl<X: Default> Default for ServiceConfig<X> {
    fn default() -> Self {
        ServiceConfig {
            nats: NatsConfig::default(),
            eventlog: LogConfig::default(),
            http: ListenConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            },
            grpc: ListenConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 9090)),
            },
            telemetry: TelemetryConfig::default(),
            shutdown_grace_secs: 10,
            snapshot_interval_secs: 300,
            extra: X::default(),
        }
    }
}

impl<X: Extra> ServiceConfig<X> {
    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.eventlog
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("eventlog: {e}")))?;
        if self.nats.url.trim().is_empty() {
            return Err(ConfigError::Invalid("nats.url is empty".into()));
        }
        if self.snapshot_interval_secs == 0 {
            return Err(ConfigError::Invalid("snapshot_interval_secs must be at least 1".into()));
        }
        if self.shutdown_grace_secs == 0 {
            return Err(ConfigError::Invalid("shutdown_grace_secs must be at least 1".into()));
        }
        self.extra.validate()
    }
}

/// A secret from config (a token, a key): compared and used, never printed. Its `Debug` shows
/// only whether it is set, so a config logged whole leaks nothing.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty (not configured).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(***)"
        })
    }
}

/// Where a server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// `ip:port`; port 0 picks a free port.
    pub listen: SocketAddr,
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,yy_eventlog=debug`; `RUST_LOG` overrides it.
    pub log_filter: String,
    /// An OTLP/gRPC collector (`http://collector:4317`); traces are exported only when set.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            otlp_endpoint: None,
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The environment prefix of a service's variables: `YY_TICKET_SYNC__` for `ticket-sync`.
pub fn env_prefix(service: &str) -> String {
    format!("YY_{}__", service.to_ascii_uppercase().replace('-', "_"))
}

/// Loads a service's config: the type's defaults, then the TOML `file` (when given), then the
/// environment variables `YY_<SERVICE>__SECTION__FIELD` (such as `YY_GATEWAY__NATS__URL`).
/// Unknown keys are errors, so a misspelt variable is caught rather than ignored.
pub fn load_config<X: Extra>(service: &str, file: Option<&Path>) -> Result<ServiceConfig<X>, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.is_file() {
            return Err(ConfigError::Invalid(format!(
                "config file {} does not exist",
                file.display()
            )));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    let prefix = env_prefix(service);
    figment = figment.merge(Env::prefixed(&prefix).split("__"));
    // Sections refuse unknown fields themselves; the top level is checked here because the
    // service's own sections are flattened into it.
    let data = figment.data().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for key in data.values().flat_map(|dict| dict.keys()) {
        let known = COMMON_KEYS.contains(&key.as_str()) || X::SECTIONS.contains(&key.as_str());
        if !known {
            return Err(ConfigError::Invalid(format!(
                "unknown key `{key}` (from the config file or a {prefix}… variable)"
            )));
        }
    }
    let config: ServiceConfig<X> = figment.extract().map_err(|error| {
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        ConfigError::Invalid(messages.join("; "))
    })?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
// figment's test jail fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "svc.toml",
                "shutdown_grace_secs = 3\n[nats]\nurl = \"nats://file:4222\"\n[eventlog]\npartitions = 4\n",
            )?;
            jail.set_env("YY_TICKET_SYNC__NATS__URL", "nats://env:4222");
            jail.set_env("YY_TICKET_SYNC__HTTP__LISTEN", "127.0.0.1:0");
            let config: ServiceConfig =
                load_config::<NoExtra>("ticket-sync", Some(Path::new("svc.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.nats.url, "nats://env:4222");
            assert_eq!(config.eventlog.partitions, 4);
            assert_eq!(config.eventlog.replicas, 1);
            assert_eq!(config.shutdown_grace_secs, 3);
            assert_eq!(config.http.listen.port(), 0);
            assert_eq!(config.grpc.listen.port(), 9090);
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_GATEWAY__NATS__URLL", "nats://typo:4222");
            let error = load_config::<NoExtra>("gateway", None).expect_err("unknown key");
            assert!(error.to_string().contains("urll"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_GATEWAY__SHUTDOWN_GRACE", "5");
            let error = load_config::<NoExtra>("gateway", None).expect_err("unknown top-level key");
            assert!(error.to_string().contains("shutdown_grace"), "{error}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("YY_GATEWAY__EVENTLOG__PARTITIONS", "many");
            let error = load_config::<NoExtra>("gateway", None).expect_err("wrong type");
            assert!(
                error.to_string().to_lowercase().contains("eventlog.partitions"),
                "{error}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|_| {
            let error = load_config::<NoExtra>("gateway", Some(Path::new("missing.toml"))).expect_err("missing");
            assert!(error.to_string().contains("missing.toml"), "{error}");
            Ok(())
        });
        let config: ServiceConfig = ServiceConfig {
            eventlog: LogConfig {
                partitions: 0,
                ..LogConfig::default()
            },
            ..ServiceConfig::default()
        };
        assert!(
            config
                .validate()
                .expect_err("zero partitions")
                .to_string()
                .contains("partitions")
        );
    }
}
