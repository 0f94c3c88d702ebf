//! The conversation service: conversations, contacts and messages, and the knowledge base. It
//! owns the conversation and knowledge-base logs, rebuilds its read models (and each tenant's
//! search index) from them, and serves the conversation and knowledge-base APIs over gRPC to the
//! gateway (which establishes the tenant).

mod directory;
pub mod domain;
mod knowledge;
mod knowledge_api;
mod service;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use yy_eventlog::LogContext;
use yy_proto::conversation::v1::conversation_service_server::ConversationServiceServer;
use yy_proto::kb::v1::knowledge_service_server::KnowledgeServiceServer;
use yy_runtime::{ConfigError, Extra, Listeners, RunError, ServiceConfig, ServiceParts, ServiceSpec, run_service};

/// The service's identity at start-up: its name and the log contexts only it writes.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "conversation",
    owns: &[LogContext::CONV, LogContext::KB],
};

/// The conversation service's own settings: the `[limits]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConversationConfig {
    /// Bounds on what clients may send.
    pub limits: LimitsConfig,
}

/// Bounds on what clients may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest message text, in UTF-8 bytes.
    pub max_message_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 16 * 1024,
        }
    }
}

impl Extra for ConversationConfig {
    const SECTIONS: &'static [&'static str] = &["limits"];

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=512 * 1024).contains(&self.limits.max_message_bytes) {
            return Err(ConfigError::Invalid(
                "limits.max_message_bytes must be 1 to 524288".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the service on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: ServiceConfig<ConversationConfig>,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let limits = domain::Limits {
        max_message_bytes: config.extra.limits.max_message_bytes,
    };
    run_service(SPEC, config, listeners, shutdown, |started| async move {
        let directory = started
            .follow_with_snapshots(LogContext::CONV, directory::Directory::default())
            .await?;
        let knowledge = started
            .follow_with_snapshots(LogContext::KB, knowledge::KnowledgeBases::default())
            .await?;
        let api = service::Conversations::new(started.log.clone(), directory, limits);
        let knowledge_api = knowledge_api::Knowledge::new(started.log.clone(), knowledge);
        // An import document may be up to MAX_IMPORT_BYTES; the rest of the message is small.
        let knowledge_server = KnowledgeServiceServer::new(knowledge_api)
            .max_decoding_message_size(knowledge_api::MAX_IMPORT_BYTES + 64 * 1024);
        let grpc = tonic::service::Routes::new(ConversationServiceServer::new(api)).add_service(knowledge_server);
        Ok(ServiceParts {
            http: axum::Router::new(),
            grpc,
        })
    })
    .await
}
