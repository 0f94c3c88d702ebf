//! The routing service: intent and priority rules, agents, queues and escalation. It owns the routing log.

pub mod understanding;

use tokio_util::sync::CancellationToken;
use yy_eventlog::LogContext;
use yy_runtime::{Listeners, LogTally, RunError, ServiceConfig, ServiceParts, ServiceSpec, run_service};

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "routing",
    owns: &[LogContext::ROUTING],
};

/// Runs the service on `listeners` until `shutdown` is cancelled.
pub async fn run(config: ServiceConfig, listeners: Listeners, shutdown: CancellationToken) -> Result<(), RunError> {
    run_service(SPEC, config, listeners, shutdown, |started| async move {
        started
            .follow_with_snapshots(LogContext::ROUTING, LogTally::default())
            .await?;
        Ok(ServiceParts::default())
    })
    .await
}
