//! The ticket-sync service: tickets, and their sync with the business's own systems. It owns the
//! ticket log.
//!
//! - Tickets (`domain`): created from conversations or through the API, with validated status
//!   transitions, comments, linked conversations and SLA due times; served by
//!   `yy.ticket.v1.TicketService` (`grpc`).
//! - Outbound (`outbound`): every local change is recorded with its outbox entries and sent to
//!   the tenant's external ticket systems through templated requests, exactly once per ticket.
//! - Inbound (`inbound`): the external system's signed webhooks become ticket events that are
//!   never echoed back.
//! - CRM (`crm`): contacts' profiles, fetched when a conversation opens and cached, become
//!   contact attributes that routing rules and flows see.
//! - Knowledge-base feeds (`kbfeed`): JSON feeds of entries, pulled with conditional requests or
//!   pushed, imported into the tenant's knowledge base; entries a feed drops are disabled.

mod connectors;
mod crm;
mod domain;
mod errors;
mod grpc;
mod health;
mod inbound;
mod kbfeed;
mod outbound;
mod state;
mod template;

use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use yy_eventlog::{ConsumerSpec, KvSpec, LogContext};
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::kb::v1::knowledge_service_client::KnowledgeServiceClient;
use yy_proto::ticket::v1::ticket_service_server::TicketServiceServer;
use yy_runtime::{
    ConfigError, Extra, Listeners, RunError, Secret, ServiceConfig, ServiceParts, ServiceSpec, run_service,
};

pub use inbound::sign as sign_inbound;

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "ticket-sync",
    owns: &[LogContext::TICKET],
};

/// The KV bucket of cached CRM profiles.
pub const CRM_CACHE_BUCKET: &str = "YY_CRM_PROFILES";

/// The service's own sections: `[upstream]` and `[ticket_sync]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TicketSyncConfig {
    /// Where the services ticket-sync calls listen.
    pub upstream: UpstreamConfig,
    /// Connector secrets, retries and caching.
    pub ticket_sync: TicketSyncSettings,
}

/// Where the services ticket-sync calls listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The conversation service's gRPC URL (contacts for the CRM).
    pub conversation: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            conversation: "http://127.0.0.1:9091".into(),
        }
    }
}

/// Connector secrets, retries and caching.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketSyncSettings {
    /// The key connector secrets are sealed with in the log (at least 16 characters). Without
    /// it, connectors with credentials or an inbound secret cannot be configured. Changing it
    /// makes stored secrets unreadable: configure them again.
    pub secret_key: Secret,
    /// The delay after a failed sync, in milliseconds; it doubles per failure.
    pub retry_base_ms: u64,
    /// The longest delay between attempts of a sync, in milliseconds.
    pub retry_max_ms: u64,
    /// Syncs sent at the same time, over all tenants.
    pub max_concurrent_syncs: usize,
    /// How long a CRM profile is cached, in seconds.
    pub crm_cache_ttl_secs: u64,
}

impl Default for TicketSyncSettings {
    fn default() -> Self {
        TicketSyncSettings {
            secret_key: Secret::default(),
            retry_base_ms: 1000,
            retry_max_ms: 300_000,
            max_concurrent_syncs: 16,
            crm_cache_ttl_secs: 900,
        }
    }
}

impl Extra for TicketSyncConfig {
    const SECTIONS: &'static [&'static str] = &["upstream", "ticket_sync"];

    fn validate(&self) -> Result<(), ConfigError> {
        let settings = &self.ticket_sync;
        if !settings.secret_key.is_empty() && settings.secret_key.expose().len() < yy_seal::MIN_SECRET_LEN {
            return Err(ConfigError::Invalid(format!(
                "ticket_sync.secret_key must be at least {} characters",
                yy_seal::MIN_SECRET_LEN
            )));
        }
        if !(10..=3_600_000).contains(&settings.retry_base_ms) {
            return Err(ConfigError::Invalid(
                "ticket_sync.retry_base_ms must be 10 to 3600000".into(),
            ));
        }
        if settings.retry_max_ms < settings.retry_base_ms || settings.retry_max_ms > 86_400_000 {
            return Err(ConfigError::Invalid(
                "ticket_sync.retry_max_ms must be at least retry_base_ms and at most 86400000".into(),
            ));
        }
        if !(1..=1024).contains(&settings.max_concurrent_syncs) {
            return Err(ConfigError::Invalid(
                "ticket_sync.max_concurrent_syncs must be 1 to 1024".into(),
            ));
        }
        if !(1..=2_592_000).contains(&settings.crm_cache_ttl_secs) {
            return Err(ConfigError::Invalid(
                "ticket_sync.crm_cache_ttl_secs must be 1 to 2592000".into(),
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
    config: ServiceConfig<TicketSyncConfig>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let settings = config.extra.ticket_sync.clone();
    let upstream = config.extra.upstream.conversation.clone();
    run_service(SPEC, config, listeners, shutdown, move |started| async move {
        let sealer = if settings.secret_key.is_empty() {
            tracing::warn!("ticket_sync.secret_key is not set: connectors with credentials cannot be configured");
            None
        } else {
            Some(
                yy_seal::Sealer::new(settings.secret_key.expose(), "ticket-sync connector secrets")
                    .map_err(|e| ConfigError::Invalid(format!("ticket_sync.secret_key: {e}")))?,
            )
        };
        let gateway = connectors::Gateway::new(sealer).map_err(RunError::Serve)?;
        let channel = tonic::transport::Endpoint::from_shared(upstream.clone())
            .map_err(|e| RunError::Serve(format!("upstream.conversation {upstream:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let conversations = ConversationServiceClient::new(channel.clone());
        let knowledge = KnowledgeServiceClient::new(channel);
        let follower = started
            .follow_with_snapshots(LogContext::TICKET, state::TicketLog::default())
            .await?;
        let store = state::Store::new(started.log.clone(), follower.clone());
        let health = health::Health::register(started.status.registry());
        let outbound = outbound::Outbound::new(
            store.clone(),
            gateway.clone(),
            health.clone(),
            outbound::Retry {
                base_ms: settings.retry_base_ms,
                max_ms: settings.retry_max_ms,
                concurrency: settings.max_concurrent_syncs,
            },
        );
        let cache = started
            .log
            .kv_bucket(&KvSpec {
                bucket: CRM_CACHE_BUCKET.into(),
                description: "CRM profiles of contacts, by tenant, connector and contact".into(),
                ttl: Duration::from_secs(settings.crm_cache_ttl_secs),
            })
            .await?;
        let crm = crm::Crm::new(store.clone(), gateway.clone(), health.clone(), cache, conversations);

        let kb_feeds = kbfeed::KbFeeds::new(store.clone(), gateway.clone(), health.clone(), knowledge);

        let worker = tokio::spawn(outbound.clone().run(started.shutdown.clone()));
        started.on_shutdown("outbound syncs", async move {
            let _ = worker.await;
        });

        let poller = tokio::spawn(kb_feeds.clone().run(started.shutdown.clone()));
        started.on_shutdown("knowledge-base feeds", async move {
            let _ = poller.await;
        });

        // The CRM lookups need the tenant's connectors: wait for the replay before consuming.
        let consumer = {
            let crm = crm.clone();
            let log = started.log.clone();
            let shutdown = started.shutdown.clone();
            let follower = follower.clone();
            async move {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = follower.caught_up() => {}
                }
                let spec = ConsumerSpec {
                    name: "ticket-sync-crm".into(),
                    context: LogContext::CONV,
                    max_deliveries: 10,
                    ack_wait: Duration::from_secs(60),
                };
                let handler = move |delivery| {
                    let crm = crm.clone();
                    async move { crm.handle(delivery).await }
                };
                match log.consume(spec, handler, shutdown.clone()).await {
                    Ok(consumer) => consumer.stopped().await,
                    Err(error) => {
                        tracing::error!(%error, "cannot consume the conversation log; CRM profiles are not looked up")
                    }
                }
            }
        };
        let task = tokio::spawn(consumer);
        started.on_shutdown("CRM consumer", async move {
            let _ = task.await;
        });

        let service = grpc::Tickets {
            store,
            gateway,
            health,
            outbound,
            crm,
            kb_feeds,
        };
        Ok(ServiceParts {
            http: axum::Router::new(),
            // A pushed knowledge-base feed may be as large as one import.
            grpc: tonic::service::Routes::new(
                TicketServiceServer::new(service).max_decoding_message_size(connectors::MAX_FEED_BYTES + 64 * 1024),
            ),
        })
    })
    .await
}
