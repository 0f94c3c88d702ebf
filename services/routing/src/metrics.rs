//! What routing reports on `/metrics`, beside the readiness and log progress every service has.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use yy_eventlog::Payload;

/// Routing's own metrics.
#[derive(Clone)]
pub struct Metrics {
    events: IntCounterVec,
    understanding: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Metrics {
        let events = IntCounterVec::new(
            Opts::new(
                "yy_routing_events_total",
                "Routing events recorded, by type: decisions, handoffs, offers and their outcomes, escalations",
            ),
            &["type"],
        )
        .expect("valid metric");
        let understanding = Histogram::with_opts(
            HistogramOpts::new(
                "yy_routing_understanding_seconds",
                "Time to understand one customer message (language, intents, sentiment, entities)",
            )
            .buckets(vec![0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05]),
        )
        .expect("valid metric");
        for collector in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(understanding.clone()),
        ] {
            // A second registration (a service restarted in the same process) keeps the first.
            let _ = registry.register(collector);
        }
        Metrics { events, understanding }
    }

    /// Counts the events of one appended commit.
    pub fn recorded<'a>(&self, payloads: impl IntoIterator<Item = &'a Payload>) {
        for payload in payloads {
            self.events.with_label_values(&[kind(payload)]).inc();
        }
    }

    /// Records how long understanding a message took.
    pub fn understood(&self, seconds: f64) {
        self.understanding.observe(seconds);
    }
}

fn kind(payload: &Payload) -> &'static str {
    match payload {
        Payload::RulesPublished(_) => "rules_published",
        Payload::IntentsConfigured(_) => "intents_configured",
        Payload::MessageRouted(m) if m.route == "bot" => "message_routed_to_bot",
        Payload::MessageRouted(_) => "message_routed_to_queue",
        Payload::AgentRegistered(_) => "agent_registered",
        Payload::AgentUpdated(_) => "agent_updated",
        Payload::AgentPresenceChanged(_) => "agent_presence_changed",
        Payload::QueueConfigured(_) => "queue_configured",
        Payload::ConversationQueued(_) => "conversation_queued",
        Payload::QueuePriorityChanged(_) => "queue_priority_changed",
        Payload::ConversationOffered(_) => "conversation_offered",
        Payload::OfferRejected(_) => "offer_rejected",
        Payload::OfferExpired(_) => "offer_expired",
        Payload::OfferWithdrawn(_) => "offer_withdrawn",
        Payload::ConversationAssigned(_) => "conversation_assigned",
        Payload::ConversationReleased(_) => "conversation_released",
        Payload::ConversationDequeued(_) => "conversation_dequeued",
        Payload::ConversationTransferred(_) => "conversation_transferred",
        Payload::SlaEscalated(_) => "sla_escalated",
        Payload::NoteAdded(_) => "note_added",
        Payload::FirstResponded(e) if e.within_target => "first_responded_within_target",
        Payload::FirstResponded(_) => "first_responded_late",
        Payload::FirstResponseOverdue(_) => "first_response_overdue",
        _ => "other",
    }
}
