//! The routing service: for every customer message, who answers — the bot or a human agent, and
//! which one. Language understanding and the tenant's rules decide the route; agents, queues,
//! offers and escalation live on each tenant's desk, an aggregate of the routing log that only
//! this service writes. The conversation service is told of assignments over gRPC.
//!
//! Inputs: a durable consumer of the conversation log (customer messages to route; conversations
//! resolved, closed or handed back), the routing API (rules, intents, agents, queues, the agent
//! workspace), and each desk's own clock (offer expiries, escalation thresholds).

mod conversations;
mod desk;
mod engine;
mod errors;
mod events;
mod grpc;
mod metrics;
mod sync;
pub mod understanding;

use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{ConsumerSpec, Delivery, LogContext, Outcome, Payload};
use yy_proto::conversation::v1::ConversationStatus;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::routing::v1::routing_service_server::RoutingServiceServer;
use yy_runtime::{ConfigError, Extra, Listeners, RunError, ServiceConfig, ServiceParts, ServiceSpec, run_service};

pub use desk::DEFAULT_RULES;
use engine::{Command, Engine, Incoming, Settings};

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "routing",
    owns: &[LogContext::ROUTING],
};

/// The routing service's own sections: `[upstream]` and `[routing]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RoutingConfig {
    /// Where the services routing calls listen.
    pub upstream: UpstreamConfig,
    /// Time and defaults.
    pub routing: RoutingSettings,
}

/// Where the services routing calls listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The conversation service's gRPC URL.
    pub conversation: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            conversation: "http://127.0.0.1:9091".into(),
        }
    }
}

/// Time and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSettings {
    /// Seconds of queue time per real second, for escalation thresholds (`after_secs`) and
    /// first-response targets. 1 in production; drills and tests raise it so that long
    /// thresholds pass quickly.
    pub time_scale: f64,
    /// The offer timeout of queues that rules create on first use, in milliseconds.
    pub default_offer_timeout_ms: u64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            time_scale: 1.0,
            default_offer_timeout_ms: 30_000,
        }
    }
}

impl Extra for RoutingConfig {
    const SECTIONS: &'static [&'static str] = &["upstream", "routing"];

    fn validate(&self) -> Result<(), ConfigError> {
        let scale = self.routing.time_scale;
        if !(scale.is_finite() && (0.001..=100_000.0).contains(&scale)) {
            return Err(ConfigError::Invalid(
                "routing.time_scale must be between 0.001 and 100000".into(),
            ));
        }
        if !(1..=yy_dispatch::MAX_OFFER_TIMEOUT_MS).contains(&self.routing.default_offer_timeout_ms) {
            return Err(ConfigError::Invalid(
                "routing.default_offer_timeout_ms must be 1 to 86400000".into(),
            ));
        }
        if !self.upstream.conversation.starts_with("http://") && !self.upstream.conversation.starts_with("https://") {
            return Err(ConfigError::Invalid(
                "upstream.conversation must be an http:// or https:// URL".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the service on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: ServiceConfig<RoutingConfig>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let settings = Settings {
        time_scale: config.extra.routing.time_scale,
        default_offer_timeout_ms: config.extra.routing.default_offer_timeout_ms,
    };
    let upstream = config.extra.upstream.conversation.clone();
    run_service(SPEC, config, listeners, shutdown, move |started| async move {
        let channel = tonic::transport::Endpoint::from_shared(upstream.clone())
            .map_err(|e| RunError::Serve(format!("upstream.conversation {upstream:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let client = ConversationServiceClient::new(channel);
        let desks = started
            .follow_with_snapshots(LogContext::ROUTING, desk::Desks::default())
            .await?;
        let view = started
            .follow_with_snapshots(LogContext::CONV, conversations::ConversationView::default())
            .await?;
        let reconciler = sync::Reconciler::new(desks.clone(), view.clone(), client.clone(), started.shutdown.clone());
        let engine = Engine::new(
            started.log.clone(),
            desks.clone(),
            view.clone(),
            reconciler,
            settings,
            metrics::Metrics::register(started.status.registry()),
            started.shutdown.clone(),
        );

        // Deciding needs the whole desk: wait for the replay before taking work or arming timers.
        let shutdown = started.shutdown.clone();
        let resume = {
            let engine = engine.clone();
            let log = started.log.clone();
            let desks = desks.clone();
            let view = view.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = async { desks.caught_up().await; view.caught_up().await } => {}
                }
                engine.resume();
                let spec = ConsumerSpec {
                    name: "routing".into(),
                    context: LogContext::CONV,
                    max_deliveries: 20,
                    ack_wait: Duration::from_secs(30),
                };
                let handler_engine = engine.clone();
                match log
                    .consume(
                        spec,
                        move |delivery| handle(handler_engine.clone(), delivery),
                        shutdown.clone(),
                    )
                    .await
                {
                    Ok(consumer) => consumer.stopped().await,
                    Err(error) => {
                        tracing::error!(%error, "cannot consume the conversation log; messages are not routed")
                    }
                }
            }
        };
        let task = tokio::spawn(resume);
        started.on_shutdown("conversation consumer", async move {
            let _ = task.await;
        });

        let grpc = tonic::service::Routes::new(RoutingServiceServer::new(grpc::Routing::new(engine, client)));
        Ok(ServiceParts {
            http: axum::Router::new(),
            grpc,
        })
    })
    .await
}

/// Routes the customer messages of one conversation-log commit, and lets the desk know of
/// conversations that left human hands.
async fn handle(engine: Engine, delivery: Delivery) -> Outcome {
    let record = delivery.record;
    // The consumer and the conversation view read the same log; the view must include this
    // commit before the message can be understood in its context.
    let applied = engine.view().applied(record.partition, record.sequence);
    if tokio::time::timeout(Duration::from_secs(10), applied).await.is_err() {
        return Outcome::Retry {
            after: Duration::from_secs(1),
            reason: "the conversation view is behind".into(),
        };
    }
    let tenant = &record.tenant_id;
    for event in &record.commit.events {
        let command = match &event.payload {
            Some(Payload::MessagePosted(posted)) if posted.role == "customer" => {
                let analyzer = {
                    let desks = engine.desks().read();
                    desks
                        .state
                        .tenant(tenant)
                        .map_or_else(desk::default_analyzer, |d| d.analyzer())
                };
                let text = posted.text.clone();
                // Understanding is CPU work that needs no desk: keep it off the async threads.
                let understood = tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let analysis = analyzer.analyze(&text);
                    (analysis, started.elapsed().as_secs_f64())
                });
                let analysis = match understood.await {
                    Ok((analysis, seconds)) => {
                        engine.metrics().understood(seconds);
                        analysis
                    }
                    Err(error) => {
                        return Outcome::Retry {
                            after: Duration::from_secs(1),
                            reason: error.to_string(),
                        };
                    }
                };
                Command::Route(Box::new(Incoming {
                    conversation_id: record.aggregate_id.clone(),
                    message_id: posted.message_id.clone(),
                    position: posted.position,
                    text: posted.text.clone(),
                    analysis,
                }))
            }
            Some(Payload::MessagePosted(posted)) if posted.role == "agent" && !posted.author_id.is_empty() => {
                Command::AgentReplied {
                    agent: posted.author_id.clone(),
                    conversation: record.aggregate_id.clone(),
                    at_ms: event
                        .occurred_at
                        .as_ref()
                        .map_or_else(engine::now_ms, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
                }
            }
            Some(Payload::ConversationStatusChanged(changed)) => {
                let reason = match ConversationStatus::try_from(changed.to) {
                    Ok(ConversationStatus::Resolved) => "resolved",
                    Ok(ConversationStatus::Closed) => "closed",
                    Ok(ConversationStatus::Bot) if !event.causation_id.starts_with(sync::COMMAND_PREFIX) => "to_bot",
                    _ => continue,
                };
                Command::Ended {
                    conversation: record.aggregate_id.clone(),
                    reason,
                }
            }
            _ => continue,
        };
        match engine.run(tenant, command).await {
            Ok(()) => {}
            // Refusals are about this one event (a conversation already gone); the rest stands.
            Err(status) if !matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Aborted) => {
                tracing::debug!(%status, "nothing to route");
            }
            Err(status) => {
                return Outcome::Retry {
                    after: Duration::from_secs(1),
                    reason: status.message().to_owned(),
                };
            }
        }
    }
    Outcome::Done
}
