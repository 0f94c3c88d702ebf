//! What a running service reports about itself: readiness, replay progress and metrics.

use std::sync::{Arc, Mutex};

use prometheus::{Encoder as _, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use yy_eventlog::{Follower, Projection};
use yy_proto::system::v1::{
    ContextProgress, GetStatusRequest, GetStatusResponse, system_service_server::SystemService,
};

/// Something whose replay progress counts towards readiness: a [`Follower`], normally.
pub trait ProgressSource: Send + Sync + 'static {
    /// Its current progress.
    fn progress(&self) -> ContextProgress;
}

impl<P: Projection> ProgressSource for Follower<P> {
    fn progress(&self) -> ContextProgress {
        let caught_up = self.is_caught_up();
        let applied = self.read();
        ContextProgress {
            context: self.context().name().into(),
            caught_up,
            applied_sequences: applied.sequences.clone(),
            commits_applied: applied.commits,
        }
    }
}

/// The state of one service instance, shared by `/readyz`, gRPC health, the status RPC and
/// `/metrics`. Cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    sources: Mutex<Vec<Arc<dyn ProgressSource>>>,
    nats: async_nats::Client,
    registry: Registry,
    ready_gauge: IntGauge,
    commits_gauge: IntGaugeVec,
    sequence_gauge: IntGaugeVec,
    connected_gauge: IntGauge,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl StatusBoard {
    /// A board for `service` (such as `ticket-sync`), with metrics named `yy_<service>_…`.
    pub fn new(service: &'static str, nats: async_nats::Client) -> Self {
        let prefix = format!("yy_{}", service.replace('-', "_"));
        let registry = Registry::new();
        let ready_gauge = IntGauge::new(
            format!("{prefix}_ready"),
            "1 once the service has caught up with the event log and is connected to NATS",
        )
        .expect("valid metric");
        let connected_gauge =
            IntGauge::new(format!("{prefix}_nats_connected"), "1 while connected to NATS").expect("valid metric");
        let commits_gauge = IntGaugeVec::new(
            Opts::new(
                format!("{prefix}_log_commits_applied_total"),
                "Commits applied to in-memory state since start, per log context",
            ),
            &["context"],
        )
        .expect("valid metric");
        let sequence_gauge = IntGaugeVec::new(
            Opts::new(
                format!("{prefix}_log_applied_sequence"),
                "Last stream sequence applied, per log context and partition",
            ),
            &["context", "partition"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(ready_gauge.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connected_gauge.clone()),
            Box::new(commits_gauge.clone()),
            Box::new(sequence_gauge.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        StatusBoard {
            inner: Arc::new(Inner {
                service,
                sources: Mutex::new(Vec::new()),
                nats,
                registry,
                ready_gauge,
                commits_gauge,
                sequence_gauge,
                connected_gauge,
            }),
        }
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// Makes `source` count towards readiness.
    pub fn track(&self, source: impl ProgressSource) {
        self.inner
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(source));
    }

    /// The registry for the service's own metrics; they appear on `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn progress(&self) -> Vec<ContextProgress> {
        let sources = self.inner.sources.lock().unwrap_or_else(|e| e.into_inner()).clone();
        sources.iter().map(|s| s.progress()).collect()
    }

    /// Whether the service is connected to NATS.
    pub fn nats_connected(&self) -> bool {
        self.inner.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// Ready: connected to NATS and every tracked source caught up.
    pub fn is_ready(&self) -> bool {
        self.nats_connected() && self.progress().iter().all(|p| p.caught_up)
    }

    /// The status RPC's answer.
    pub fn status(&self) -> GetStatusResponse {
        let contexts = self.progress();
        GetStatusResponse {
            service: self.inner.service.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ready: self.nats_connected() && contexts.iter().all(|p| p.caught_up),
            contexts,
        }
    }

    /// The Prometheus text exposition of every metric, refreshed from the current state.
    pub fn render_metrics(&self) -> String {
        let status = self.status();
        let inner = &self.inner;
        inner.ready_gauge.set(i64::from(status.ready));
        inner.connected_gauge.set(i64::from(self.nats_connected()));
        for context in &status.contexts {
            inner
                .commits_gauge
                .with_label_values(&[context.context.as_str()])
                .set(context.commits_applied as i64);
            for (partition, sequence) in context.applied_sequences.iter().enumerate() {
                inner
                    .sequence_gauge
                    .with_label_values(&[context.context.as_str(), &partition.to_string()])
                    .set(*sequence as i64);
            }
        }
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&inner.registry.gather(), &mut buffer) {
            tracing::error!(%error, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[tonic::async_trait]
impl SystemService for StatusBoard {
    async fn get_status(
        &self,
        _request: tonic::Request<GetStatusRequest>,
    ) -> Result<tonic::Response<GetStatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.status()))
    }
}
