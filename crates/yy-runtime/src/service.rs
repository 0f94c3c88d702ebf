//! The one start-up and shutdown path every service takes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use yy_eventlog::{EventLog, Follower, LogContext, LogError, Snapshottable};
use yy_proto::system::v1::system_service_server::SystemServiceServer;

use crate::config::{ConfigError, Extra, ServiceConfig, load_config};
use crate::status::StatusBoard;
use crate::telemetry;

/// What distinguishes one service at start-up.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The service's name, such as `ticket-sync`: the config prefix, metric prefix and NATS client name.
    pub name: &'static str,
    /// The log contexts this service alone writes; they are provisioned and checked at start.
    pub owns: &'static [LogContext],
}

/// The sockets a service serves on, bound before it starts so that tests can use port 0.
#[derive(Debug)]
pub struct Listeners {
    /// `/healthz`, `/readyz`, `/metrics` and any REST routes.
    pub http: TcpListener,
    /// gRPC, with health, reflection and the status service.
    pub grpc: TcpListener,
}

impl Listeners {
    /// Binds the addresses in `config`.
    pub async fn bind<X>(config: &ServiceConfig<X>) -> std::io::Result<Self> {
        let http = TcpListener::bind(config.http.listen).await?;
        let grpc = TcpListener::bind(config.grpc.listen).await?;
        Ok(Listeners { http, grpc })
    }
}

/// Handed to a service's own start-up once the log is connected, provisioned and checked.
#[derive(Clone)]
pub struct Started {
    /// The service's name.
    pub service: &'static str,
    /// The event log.
    pub log: EventLog,
    /// Where the service registers what counts towards readiness, and its metrics.
    pub status: StatusBoard,
    /// Cancelled when the service must stop.
    pub shutdown: CancellationToken,
    /// How often followers with snapshots save one, in seconds.
    pub snapshot_interval_secs: u64,
    drains: Arc<Mutex<Vec<(&'static str, Drain)>>>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// Registers work to finish during shutdown, after the servers stopped accepting requests
    /// (a consumer's in-flight delivery, a final snapshot), bounded by the grace period.
    pub fn on_shutdown(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        self.drains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, Box::pin(work)));
    }

    /// Rebuilds `P` from the latest snapshot of `context` plus the log after it, follows the
    /// tail, counts it towards readiness, and saves a snapshot every `snapshot_interval_secs` and
    /// at shutdown, so that the next start reads only recent history.
    pub async fn follow_with_snapshots<P: Snapshottable>(
        &self,
        context: LogContext,
        empty: P,
    ) -> Result<Follower<P>, LogError> {
        let key = format!("{}.{}", self.service, context.name());
        let follower = self
            .log
            .follow_from_snapshot(&key, context, empty, self.shutdown.clone())
            .await?;
        self.status.track(follower.clone());
        let snapshots = Snapshots {
            log: self.log.clone(),
            key,
            follower: follower.clone(),
            saved_commits: 0,
        };
        let interval = Duration::from_secs(self.snapshot_interval_secs);
        let shutdown = self.shutdown.clone();
        let periodic = tokio::spawn(async move {
            let mut snapshots = snapshots;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return snapshots,
                    _ = tokio::time::sleep(interval) => snapshots.save_if_changed().await,
                }
            }
        });
        self.on_shutdown("final snapshot", async move {
            if let Ok(mut snapshots) = periodic.await {
                snapshots.save_if_changed().await;
            }
        });
        Ok(follower)
    }
}

struct Snapshots<P> {
    log: EventLog,
    key: String,
    follower: Follower<P>,
    saved_commits: u64,
}

impl<P: Snapshottable> Snapshots<P> {
    async fn save_if_changed(&mut self) {
        let commits = self.follower.read().commits;
        // Before catching up, a snapshot would only record a partial replay.
        if commits == self.saved_commits || !self.follower.is_caught_up() {
            return;
        }
        match self.log.save_snapshot(&self.key, &self.follower).await {
            Ok(_) => self.saved_commits = commits,
            Err(error) => {
                tracing::warn!(%error, key = %self.key, "snapshot not saved; the next start replays more of the log")
            }
        }
    }
}

/// A future run during shutdown.
pub type Drain = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a service serves, returned by its start-up.
#[derive(Debug, Default)]
pub struct ServiceParts {
    /// Extra HTTP routes (the health and metrics routes are added).
    pub http: Router,
    /// gRPC services (health, reflection and status are added).
    pub grpc: tonic::service::Routes,
}

/// Why a service stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The event log refused or failed (including an unsafe durability setup).
    #[error(transparent)]
    Log(#[from] LogError),
    /// A socket or server failed.
    #[error("{0}")]
    Serve(String),
}

impl RunError {
    /// The process exit code: 64 for bad config, 78 for an unsafe durability setup, 69 when NATS
    /// cannot be reached, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) | RunError::Log(LogError::Config(_)) => 64,
            RunError::Log(LogError::Unsafe(_) | LogError::PartitionCountMismatch { .. }) => 78,
            RunError::Log(LogError::Nats { .. } | LogError::Unavailable(_)) => 69,
            _ => 1,
        }
    }
}

/// Runs a service until `shutdown` is cancelled: connects to NATS, provisions and checks the
/// contexts it owns, lets `build` set up the service's own state and routes, serves HTTP and
/// gRPC, and on shutdown drains within `shutdown_grace_secs`.
pub async fn run_service<X: Extra, F, Fut>(
    spec: ServiceSpec,
    config: ServiceConfig<X>,
    listeners: Listeners,
    shutdown: CancellationToken,
    build: F,
) -> Result<(), RunError>
where
    F: FnOnce(Started) -> Fut,
    Fut: Future<Output = Result<ServiceParts, RunError>>,
{
    config.validate()?;
    let client_name = format!("yy-{}", spec.name);
    let connect = EventLog::connect(&config.nats, config.eventlog.clone(), &client_name);
    let log = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        log = connect => log?,
    };
    for context in spec.owns {
        log.provision(*context).await?;
    }
    let report = log.check_durability(spec.owns).await?;
    tracing::info!(server = %report.server.version, sync_always = ?report.server.sync_always, "event log ready for writes");

    let status = StatusBoard::new(spec.name, log.client().clone());
    let drains = Arc::new(Mutex::new(Vec::new()));
    let parts = build(Started {
        service: spec.name,
        log: log.clone(),
        status: status.clone(),
        shutdown: shutdown.clone(),
        snapshot_interval_secs: config.snapshot_interval_secs,
        drains: drains.clone(),
    })
    .await?;

    let http_addr = listeners
        .http
        .local_addr()
        .map_err(|e| RunError::Serve(e.to_string()))?;
    let grpc_addr = listeners
        .grpc
        .local_addr()
        .map_err(|e| RunError::Serve(e.to_string()))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::NotServing).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(yy_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| RunError::Serve(format!("gRPC reflection: {e}")))?;
    let routes = parts
        .grpc
        .add_service(health_service)
        .add_service(reflection)
        .add_service(SystemServiceServer::new(status.clone()));
    let grpc = tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listeners.grpc),
            shutdown.clone().cancelled_owned(),
        );
    let http = axum::serve(listeners.http, parts.http.merge(operations_routes(status.clone())))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::spawn(report_readiness(
        status.clone(),
        health,
        shutdown.clone(),
        http_addr,
        grpc_addr,
    ));

    let servers = async {
        let (grpc, http) = tokio::join!(grpc, http);
        grpc.map_err(|e| RunError::Serve(format!("gRPC server: {e}")))?;
        http.map_err(|e| RunError::Serve(format!("HTTP server: {e}")))
    };
    tokio::pin!(servers);
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => {}
        result = &mut servers => {
            // Before shutdown, the servers only return when they fail.
            result?;
            return Err(RunError::Serve("servers stopped unexpectedly".into()));
        }
    }

    tracing::info!("shutting down");
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let drained = tokio::time::timeout(grace, async {
        let served = servers.await;
        let drains = std::mem::take(&mut *drains.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, drain) in drains {
            tracing::debug!(drain = name, "draining");
            drain.await;
        }
        if let Err(error) = log.client().flush().await {
            tracing::warn!(%error, "flushing the NATS connection failed");
        }
        served
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            grace_secs = config.shutdown_grace_secs,
            "in-flight work did not finish within the grace period"
        ),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Keeps gRPC health in step with the status board and logs when the service becomes ready.
async fn report_readiness(
    status: StatusBoard,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
    http: SocketAddr,
    grpc: SocketAddr,
) {
    let mut was_ready = false;
    loop {
        let ready = status.is_ready();
        if ready != was_ready {
            let serving = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", serving).await;
            health.set_service_status("yy.system.v1.SystemService", serving).await;
            if ready {
                tracing::info!(%http, %grpc, "ready");
            } else {
                tracing::warn!("not ready");
            }
            was_ready = ready;
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                health.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn operations_routes(status: StatusBoard) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status)
}

async fn readyz(State(status): State<StatusBoard>) -> impl IntoResponse {
    let report = status.status();
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let contexts: Vec<_> = report
        .contexts
        .iter()
        .map(|c| {
            serde_json::json!({
                "context": c.context,
                "caught_up": c.caught_up,
                "commits_applied": c.commits_applied,
            })
        })
        .collect();
    let body = serde_json::json!({
        "service": report.service,
        "ready": report.ready,
        "nats_connected": status.nats_connected(),
        "contexts": contexts,
    });
    (code, axum::Json(body))
}

async fn metrics(State(status): State<StatusBoard>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        status.render_metrics(),
    )
}

/// Returns a token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        cancel.cancel();
    });
    token
}

/// The command line every service binary takes.
#[derive(Debug, clap::Parser)]
struct Cli {
    /// A TOML config file; `YY_<SERVICE>__SECTION__FIELD` environment variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// The whole of a service's `main`: parses the command line, loads config, starts telemetry and
/// runs `run` until SIGTERM, returning the exit code (64 for bad config, see [`RunError::exit_code`]).
pub fn main_with<X: Extra, F, Fut>(spec: ServiceSpec, run: F) -> ExitCode
where
    F: FnOnce(ServiceConfig<X>, Listeners, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    let cli = <Cli as clap::Parser>::parse();
    let config = match load_config::<X>(spec.name, cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("yy-{}: {error}", spec.name);
            return ExitCode::from(64);
        }
    };
    let _telemetry = match telemetry::init(spec.name, &config.telemetry) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("yy-{}: invalid configuration: {error}", spec.name);
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("yy-{}: cannot start the async runtime: {error}", spec.name);
            return ExitCode::from(71);
        }
    };
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(&config).await.map_err(|e| {
            RunError::Serve(format!(
                "cannot listen on {} / {}: {e}",
                config.http.listen, config.grpc.listen
            ))
        })?;
        let shutdown = shutdown_on_signals();
        run(config, listeners, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            eprintln!("yy-{}: {error}", spec.name);
            ExitCode::from(error.exit_code())
        }
    }
}
