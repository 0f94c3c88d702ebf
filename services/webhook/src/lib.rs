//! The webhook service: tells external systems what happened in Yiwaiwai by POSTing signed
//! public events to their endpoints. It owns the webhook log.
//!
//! - Endpoints per tenant (`yy.webhook.v1.WebhookService`): URL, event-type filter, headers, rate
//!   limit, ordered delivery, and a signing secret sealed in the log (`sealing`).
//! - Fan-out (`fanout`): durable consumers of the contexts with public events record a message per
//!   event and subscribed endpoint before acknowledging the commit.
//! - Delivery (`delivery`): a worker per endpoint signs (`signing`, Standard Webhooks) and sends
//!   what is due, records every attempt, and schedules retries in the log; the HTTP client
//!   refuses internal addresses after resolution (`guard`).

mod config;
mod delivery;
mod endpoints;
mod errors;
mod fanout;
mod grpc;
pub mod guard;
mod metrics;
mod sealing;
pub mod signing;
mod state;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use yy_eventlog::LogContext;
use yy_proto::webhook::v1::webhook_service_server::WebhookServiceServer;
use yy_runtime::{Listeners, RunError, ServiceConfig, ServiceParts, ServiceSpec, run_service};

pub use config::{WebhookConfig, WebhookSettings};

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "webhook",
    owns: &[LogContext::WEBHOOK],
};

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the service on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: ServiceConfig<WebhookConfig>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let settings = config.extra.webhook.clone();
    let policy = Arc::new(settings.policy()?);
    let sealer = sealing::Sealer::new(settings.secret_key.expose())
        .map_err(|e| yy_runtime::ConfigError::Invalid(format!("webhook.secret_key: {e}")))?;
    let sealer = Arc::new(sealer);
    if !sealer.is_configured() {
        tracing::warn!("webhook.secret_key is not set: endpoints cannot be created until it is");
    }
    let client = delivery::http_client(policy.clone(), Duration::from_secs(settings.timeout_secs))
        .map_err(|e| RunError::Serve(format!("cannot build the HTTP client: {e}")))?;
    run_service(SPEC, config, listeners, shutdown, move |started| async move {
        let state = started
            .follow_with_snapshots(LogContext::WEBHOOK, state::Webhooks::default())
            .await?;
        let metrics = metrics::Metrics::register(started.status.registry());
        let endpoints = endpoints::Endpoints::new(started.log.clone(), state.clone(), metrics.clone());
        let dispatcher = delivery::Dispatcher::new(
            started.log.clone(),
            endpoints.clone(),
            sealer.clone(),
            settings,
            policy.clone(),
            client,
            started.shutdown.clone(),
        );

        // Messages are made against the endpoints as the log has them, and timers are computed
        // from the waiting messages: both wait for the replay.
        let work = {
            let (log, endpoints, dispatcher) = (started.log.clone(), endpoints.clone(), dispatcher.clone());
            let shutdown = started.shutdown.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = state.caught_up() => {}
                }
                let supervisor = tokio::spawn(dispatcher.clone().run());
                let mut consumers = Vec::new();
                for source in fanout::SOURCES {
                    consumers.push(tokio::spawn(consume(
                        log.clone(),
                        endpoints.clone(),
                        dispatcher.clone(),
                        source,
                        shutdown.clone(),
                    )));
                }
                for consumer in consumers {
                    let _ = consumer.await;
                }
                let _ = supervisor.await;
            }
        };
        let task = tokio::spawn(work);
        let drained = dispatcher.clone();
        started.on_shutdown("deliveries", async move {
            let _ = task.await;
            drained.stopped().await;
        });

        let api = grpc::Webhook::new(started.log.clone(), endpoints, dispatcher, sealer, policy);
        Ok(ServiceParts {
            http: axum::Router::new(),
            grpc: tonic::service::Routes::new(WebhookServiceServer::new(api)),
        })
    })
    .await
}

/// Consumes one source context until shutdown. The context's owner may start after this
/// service, so a consumer that cannot be created yet is tried again.
async fn consume(
    log: yy_eventlog::EventLog,
    endpoints: endpoints::Endpoints,
    dispatcher: delivery::Dispatcher,
    source: LogContext,
    shutdown: CancellationToken,
) {
    let mut told = false;
    loop {
        let handler = {
            let (log, endpoints, dispatcher) = (log.clone(), endpoints.clone(), dispatcher.clone());
            move |delivery| fanout::handle(log.clone(), endpoints.clone(), dispatcher.clone(), source, delivery)
        };
        match log.consume(fanout::consumer(source), handler, shutdown.clone()).await {
            Ok(consumer) => {
                consumer.stopped().await;
                return;
            }
            Err(error) => {
                // Said once: a context whose owner is not deployed would otherwise fill the log.
                if !told {
                    tracing::info!(%error, context = source.name(), "cannot consume this context yet; trying every 2 s");
                    told = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}
