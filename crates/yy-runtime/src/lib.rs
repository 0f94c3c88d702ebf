//! What every Yiwaiwai service shares, so that each service's code is only its domain:
//!
//! - [`config`]: typed layered config (defaults < TOML file < `YY_<SERVICE>__SECTION__FIELD`
//!   environment) that fails fast with a clear message;
//! - [`telemetry`]: tracing, with OTLP export when configured;
//! - [`status`]: readiness (caught up with the log, connected to NATS) for `/readyz`, gRPC health,
//!   the `yy.system.v1.SystemService` status RPC and Prometheus `/metrics`;
//! - [`service`]: the one start-up and shutdown path: connect, provision, check durability,
//!   serve HTTP and gRPC, drain within a grace period on SIGTERM.

pub mod config;
pub mod service;
pub mod status;
pub mod tally;
pub mod telemetry;
pub mod tenancy;

pub use config::{ConfigError, Extra, NoExtra, Secret, ServiceConfig, load_config};
pub use service::{
    Drain, Listeners, RunError, ServiceParts, ServiceSpec, Started, main_with, run_service, shutdown_on_signals,
};
pub use status::{ProgressSource, StatusBoard};
pub use tally::LogTally;
pub use tenancy::{error_status, for_tenant, tenant_of};
