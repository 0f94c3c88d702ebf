//! A gateway and a conversation service (and, for the routing, webhook and ticket tests, a
//! routing, webhook or ticket-sync service) started in-process against a fresh nats-server.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use yy_conversation::ConversationConfig;
use yy_eventlog::{LogConfig, NatsConfig};
use yy_gateway::GatewayConfig;
use yy_routing::RoutingConfig;
use yy_runtime::{Listeners, RunError, Secret, ServiceConfig};
use yy_testkit::{NatsServer, RunningService, spawn_service};
use yy_ticket_sync::TicketSyncConfig;
use yy_webhook::{WebhookConfig, WebhookSettings};

/// The admin token the test gateway is configured with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A tenant and one of its API keys.
pub struct TenantKey {
    /// The tenant's id.
    pub id: String,
    /// The key.
    pub key: String,
}

/// nats-server, conversation service, routing service (when asked for) and gateway.
pub struct Cluster {
    pub nats: NatsServer,
    pub conversation: Option<RunningService<RunError>>,
    pub routing: Option<RunningService<RunError>>,
    pub webhook: Option<RunningService<RunError>>,
    pub ticket_sync: Option<RunningService<RunError>>,
    pub gateway: Option<RunningService<RunError>>,
    pub http: reqwest::Client,
    conversation_config: ServiceConfig<ConversationConfig>,
}

fn common<X: Default>(nats: &NatsServer) -> ServiceConfig<X> {
    ServiceConfig {
        nats: NatsConfig {
            url: nats.url(),
            monitor_url: Some(nats.monitor_url()),
            ..NatsConfig::default()
        },
        eventlog: LogConfig {
            partitions: 4,
            ..LogConfig::default()
        },
        shutdown_grace_secs: 5,
        ..ServiceConfig::default()
    }
}

impl Cluster {
    /// Starts everything and waits until both services are ready.
    pub async fn start() -> Cluster {
        let mut cluster = Cluster::new();
        cluster.start_conversation().await;
        cluster.start_gateway().await;
        cluster
    }

    /// Starts everything with a routing service too, and waits until all three are ready.
    pub async fn start_with_routing() -> Cluster {
        let mut cluster = Cluster::new();
        cluster.start_conversation().await;
        cluster.start_routing().await;
        cluster.start_gateway().await;
        cluster
    }

    /// Starts everything with a webhook service too (and a routing service with `routing`), and
    /// waits until all are ready.
    pub async fn start_with_webhooks(routing: bool) -> Cluster {
        let mut cluster = Cluster::new();
        cluster.start_conversation().await;
        if routing {
            cluster.start_routing().await;
        }
        cluster.start_webhook().await;
        cluster.start_gateway().await;
        cluster
    }

    /// Starts everything with a ticket-sync service too, and waits until all three are ready.
    pub async fn start_with_tickets() -> Cluster {
        let mut cluster = Cluster::new();
        cluster.start_conversation().await;
        cluster.start_ticket_sync().await;
        cluster.start_gateway().await;
        cluster
    }

    /// Starts every service behind the gateway, and the gateway, and waits until all are ready.
    pub async fn start_with_everything() -> Cluster {
        let mut cluster = Cluster::new();
        cluster.start_conversation().await;
        cluster.start_routing().await;
        cluster.start_webhook().await;
        cluster.start_ticket_sync().await;
        cluster.start_gateway().await;
        cluster
    }

    fn new() -> Cluster {
        let nats = NatsServer::start();
        let conversation_config = common::<ConversationConfig>(&nats);
        Cluster {
            nats,
            conversation: None,
            routing: None,
            webhook: None,
            ticket_sync: None,
            gateway: None,
            http: reqwest::Client::new(),
            conversation_config,
        }
    }

    /// Starts the routing service, calling the running conversation service.
    pub async fn start_routing(&mut self) {
        let mut config = common::<RoutingConfig>(&self.nats);
        let conversation = self.conversation.as_ref().expect("conversation runs").grpc;
        config.extra.upstream.conversation = format!("http://{conversation}");
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_routing::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", running.http)).await;
        self.routing = Some(running);
    }

    /// Starts the webhook service: loopback receivers allowed, and a short retry schedule (one
    /// retry 5 s of schedule later, at 50x) so that a message fails for good within a second.
    pub async fn start_webhook(&mut self) {
        let mut config = common::<WebhookConfig>(&self.nats);
        config.extra = WebhookConfig {
            webhook: WebhookSettings {
                secret_key: Secret::new("gateway-test-webhook-secret-key-0123456789"),
                retry_schedule_secs: vec![5],
                retry_jitter: 0.0,
                time_scale: 50.0,
                timeout_secs: 2,
                allow_cidrs: vec!["127.0.0.0/8".into()],
                ..WebhookSettings::default()
            },
        };
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_webhook::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", running.http)).await;
        self.webhook = Some(running);
    }

    /// Starts the ticket-sync service with a sealing key and quick retries (100 ms doubling to
    /// 400 ms), calling the conversation service started before it.
    pub async fn start_ticket_sync(&mut self) {
        let mut config = common::<TicketSyncConfig>(&self.nats);
        let conversation = self.conversation.as_ref().expect("the conversation service runs");
        config.extra.upstream.conversation = format!("http://{}", conversation.grpc);
        config.extra.ticket_sync.secret_key = Secret::new("gateway-test-ticket-sync-secret-key-0123456789");
        config.extra.ticket_sync.retry_base_ms = 100;
        config.extra.ticket_sync.retry_max_ms = 400;
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_ticket_sync::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", running.http)).await;
        self.ticket_sync = Some(running);
    }

    /// Starts (or restarts) the conversation service.
    pub async fn start_conversation(&mut self) {
        if let Some(running) = self.conversation.take() {
            running.stop().await.expect("conversation stops cleanly");
        }
        let config = self.conversation_config.clone();
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_conversation::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", running.http)).await;
        self.conversation = Some(running);
        // The upstream address of the routing service and the gateway changes with the
        // conversation service's port.
        if let Some(routing) = self.routing.take() {
            routing.stop().await.expect("routing stops cleanly");
            self.start_routing().await;
        }
        if self.gateway.is_some() {
            self.start_gateway().await;
        }
    }

    /// Starts (or restarts) the gateway.
    pub async fn start_gateway(&mut self) {
        if let Some(running) = self.gateway.take() {
            running.stop().await.expect("gateway stops cleanly");
        }
        let mut config = common::<GatewayConfig>(&self.nats);
        config.extra.auth.admin_token = Secret::new(ADMIN_TOKEN);
        config.extra.auth.key_secret = Secret::new("test-key-secret-0123456789abcdef0123456789");
        let upstream = self.conversation.as_ref().expect("conversation runs").grpc;
        config.extra.upstream.conversation = format!("http://{upstream}");
        if let Some(routing) = &self.routing {
            config.extra.upstream.routing = format!("http://{}", routing.grpc);
        }
        if let Some(webhook) = &self.webhook {
            config.extra.upstream.webhook = format!("http://{}", webhook.grpc);
        }
        if let Some(ticket_sync) = &self.ticket_sync {
            config.extra.upstream.ticket_sync = format!("http://{}", ticket_sync.grpc);
        }
        let running = spawn_service(move |http, grpc, shutdown: CancellationToken| {
            yy_gateway::run(config, Listeners { http, grpc }, shutdown)
        })
        .await;
        wait_ready(&format!("http://{}/readyz", running.http)).await;
        self.gateway = Some(running);
    }

    /// The gateway's URL for `path` (such as `/v1/conversations`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.as_ref().expect("gateway runs").http)
    }

    /// The gateway's gRPC endpoint.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.gateway.as_ref().expect("gateway runs").grpc)
    }

    /// Creates a tenant and issues it an API key through the admin API.
    pub async fn create_tenant(&self, name: &str) -> TenantKey {
        let admin = |path: &str| {
            self.http
                .post(self.url(path))
                .bearer_auth(ADMIN_TOKEN)
                .json(&serde_json::json!({ "name": name }))
        };
        let response = admin("/admin/v1/tenants").send().await.expect("create tenant");
        assert_eq!(response.status(), 201, "create tenant");
        let tenant: serde_json::Value = response.json().await.expect("tenant json");
        let id = tenant["id"].as_str().expect("tenant id").to_owned();
        let response = admin(&format!("/admin/v1/tenants/{id}/api-keys"))
            .send()
            .await
            .expect("issue key");
        assert_eq!(response.status(), 201, "issue key");
        let key: serde_json::Value = response.json().await.expect("key json");
        TenantKey {
            id,
            key: key["key"].as_str().expect("key").to_owned(),
        }
    }

    /// Stops the services.
    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await.expect("gateway stops cleanly");
        }
        if let Some(routing) = self.routing.take() {
            routing.stop().await.expect("routing stops cleanly");
        }
        if let Some(webhook) = self.webhook.take() {
            webhook.stop().await.expect("webhook stops cleanly");
        }
        if let Some(ticket_sync) = self.ticket_sync.take() {
            ticket_sync.stop().await.expect("ticket-sync stops cleanly");
        }
        if let Some(conversation) = self.conversation.take() {
            conversation.stop().await.expect("conversation stops cleanly");
        }
    }
}

/// Waits until `url` answers 200.
pub async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
