//! The gateway: the public edge (REST, gRPC, live event streams), authentication and tenancy.
//! It owns the IAM and audit logs. Conversation, routing, ticket and webhook commands and queries
//! are forwarded to the services that own them with the caller's tenant, which only the gateway
//! establishes.

pub mod config;
mod grpc_proxy;
pub mod iam;
mod live;
pub mod problem;
mod rest;
mod upstream;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use yy_eventlog::{EventLog, LogContext};
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::routing::v1::routing_service_client::RoutingServiceClient;
use yy_proto::ticket::v1::ticket_service_client::TicketServiceClient;
use yy_proto::webhook::v1::webhook_service_client::WebhookServiceClient;
use yy_runtime::{Listeners, RunError, ServiceConfig, ServiceParts, ServiceSpec, run_service};

pub use config::GatewayConfig;

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "gateway",
    owns: &[LogContext::IAM, LogContext::AUDIT],
};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Tenants and API keys.
    pub iam: iam::Iam,
    /// The conversation service.
    pub conversations: ConversationServiceClient<tonic::transport::Channel>,
    /// The routing service.
    pub routing: RoutingServiceClient<tonic::transport::Channel>,
    /// The webhook service.
    pub webhooks: WebhookServiceClient<tonic::transport::Channel>,
    /// The ticket-sync service.
    pub tickets: TicketServiceClient<tonic::transport::Channel>,
    /// The event log (idempotency records, live events).
    pub log: EventLog,
    /// The gateway's own settings.
    pub config: Arc<GatewayConfig>,
}

/// Runs the gateway on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: ServiceConfig<GatewayConfig>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let gateway = Arc::new(config.extra.clone());
    run_service(SPEC, config, listeners, shutdown, |started| async move {
        let iam = iam::Iam::start(&started, &gateway.auth).await?;
        let conversation = upstream::channel(&gateway.upstream.conversation)?;
        let routing = upstream::channel(&gateway.upstream.routing)?;
        let webhook = upstream::channel(&gateway.upstream.webhook)?;
        let ticket_sync = upstream::channel(&gateway.upstream.ticket_sync)?;
        let state = AppState {
            iam,
            conversations: ConversationServiceClient::new(conversation.clone()),
            routing: RoutingServiceClient::new(routing.clone()),
            webhooks: WebhookServiceClient::new(webhook.clone()),
            tickets: TicketServiceClient::new(ticket_sync.clone()),
            log: started.log.clone(),
            config: gateway,
        };
        let http = rest::middleware(
            axum::Router::new()
                .merge(state.iam.admin_routes())
                .merge(rest::routes())
                .merge(live::routes(started.shutdown.clone()))
                .with_state(state.clone()),
            &state,
        );
        let upstreams = grpc_proxy::Upstreams {
            conversation,
            routing,
            webhook,
            ticket_sync,
        };
        let grpc = grpc_proxy::routes(state, upstreams);
        Ok(ServiceParts { http, grpc })
    })
    .await
}
