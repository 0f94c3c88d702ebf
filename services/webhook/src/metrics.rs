//! What the webhook service reports on `/metrics`, beside the readiness and log progress every
//! service has.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use yy_proto::webhook::v1 as pb;

/// The webhook service's own metrics.
#[derive(Clone)]
pub struct Metrics {
    messages: IntCounter,
    attempts: IntCounterVec,
    latency: Histogram,
    disabled: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Metrics {
        let messages = IntCounter::new(
            "yy_webhook_messages_total",
            "Messages made for endpoints (one per public event and subscribed endpoint)",
        )
        .expect("valid metric");
        let attempts = IntCounterVec::new(
            Opts::new(
                "yy_webhook_attempts_total",
                "Delivery attempts recorded, by result: delivered, retry (another attempt is scheduled), given_up (the schedule is exhausted), gone (410)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "yy_webhook_attempt_seconds",
                "Time from sending a delivery to the end of its answer (or the failure)",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0]),
        )
        .expect("valid metric");
        let disabled = IntCounterVec::new(
            Opts::new(
                "yy_webhook_endpoints_disabled_total",
                "Endpoints disabled by the service, by reason: gone (410) or failing",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(messages.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(attempts.clone()),
            Box::new(latency.clone()),
            Box::new(disabled.clone()),
        ] {
            // A second registration (a service restarted in the same process) keeps the first.
            let _ = registry.register(collector);
        }
        Metrics {
            messages,
            attempts,
            latency,
            disabled,
        }
    }

    /// Counts messages recorded.
    pub fn messages_made(&self, count: usize) {
        self.messages.inc_by(count as u64);
    }

    /// Counts one recorded attempt.
    pub fn attempted(&self, attempt: &pb::DeliveryAttempted, gone: bool) {
        let result = if attempt.delivered {
            "delivered"
        } else if gone {
            "gone"
        } else if attempt.next_attempt_at_ms == 0 {
            "given_up"
        } else {
            "retry"
        };
        self.attempts.with_label_values(&[result]).inc();
        self.latency.observe(f64::from(attempt.latency_ms) / 1000.0);
    }

    /// Counts an endpoint the service disabled.
    pub fn disabled(&self, reason: &str) {
        self.disabled.with_label_values(&[reason]).inc();
    }
}
