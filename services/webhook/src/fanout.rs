//! From public events to messages: a durable consumer of each context with public events turns
//! every commit into one message per event and subscribed endpoint, and acknowledges the commit
//! only once those messages are in the webhook log. The webhook context's own public event
//! (`webhook.endpoint_disabled`) gets its messages in the very commit that disables the endpoint
//! (see `endpoints`), through the same [`messages_for`]. A kill at any point loses nothing: an
//! unacknowledged commit is delivered again, and its messages (whose ids derive from endpoint
//! and event) are stored once.

use std::time::Duration;

use sha2::{Digest, Sha256};
use yy_eventlog::{ConsumerSpec, Delivery, EventLog, Expected, LogContext, NewCommit, Outcome, Payload, Record};
use yy_proto::webhook::v1 as pb;

use crate::delivery::Dispatcher;
use crate::endpoints::{Endpoints, envelope};
use crate::state::Tenant;

/// The contexts whose public events are delivered through a consumer.
pub const SOURCES: [LogContext; 3] = [LogContext::CONV, LogContext::ROUTING, LogContext::TICKET];

/// The consumer of one source context.
pub fn consumer(context: LogContext) -> ConsumerSpec {
    ConsumerSpec {
        name: "webhook".into(),
        context,
        // Only the log being unreachable makes a commit fail here, and giving up would lose its
        // deliveries: it is retried until the log is back.
        max_deliveries: u32::MAX,
        ack_wait: Duration::from_secs(30),
    }
}

/// The message id of an event for an endpoint: the same whenever the commit is read, so a
/// redelivered commit creates no second message, and the `webhook-id` of every delivery of it.
pub fn message_id(endpoint_id: &str, event_id: &str) -> String {
    let digest = Sha256::digest(format!("{endpoint_id}/{event_id}"));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The messages a commit makes: one per public event and active endpoint of the tenant that
/// subscribed to its type and existed when it occurred (an endpoint hears of what happens from
/// its registration on, not of history). Also returns the endpoints concerned.
pub fn messages_for(record: &Record, endpoints: &Tenant) -> (Vec<Payload>, Vec<String>) {
    let mut messages = Vec::new();
    let mut concerned = Vec::new();
    for envelope in &record.commit.events {
        let Some(event) = yy_events::public_event(record, envelope) else {
            continue;
        };
        let occurred_at_ms = envelope
            .occurred_at
            .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        let mut payload = None;
        for endpoint in endpoints.endpoints.values() {
            if !endpoint.is_active()
                || occurred_at_ms < endpoint.created_at_ms
                || !endpoint.settings.wants(&event.event_type)
            {
                continue;
            }
            // Serializing strings, numbers and maps cannot fail.
            let payload = payload
                .get_or_insert_with(|| serde_json::to_string(&event).unwrap_or_default())
                .clone();
            messages.push(Payload::WebhookMessageEnqueued(pb::MessageEnqueued {
                message_id: message_id(&endpoint.id, &event.id),
                endpoint_id: endpoint.id.clone(),
                event_id: event.id.clone(),
                event_type: event.event_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                payload,
                created_at_ms: crate::now_ms(),
            }));
            if !concerned.contains(&endpoint.id) {
                concerned.push(endpoint.id.clone());
            }
        }
    }
    (messages, concerned)
}

/// Records the messages one source commit makes.
pub async fn handle(
    log: EventLog,
    endpoints: Endpoints,
    dispatcher: Dispatcher,
    source: LogContext,
    delivery: Delivery,
) -> Outcome {
    let record = delivery.record;
    let tenant = record.tenant_id.clone();
    let (messages, woken) = {
        let state = endpoints.state().read();
        match state.state.tenant(&tenant) {
            Some(tenant_endpoints) => messages_for(&record, tenant_endpoints),
            None => return Outcome::Done,
        }
    };
    if messages.is_empty() {
        return Outcome::Done;
    }
    let count = messages.len();
    let outbox = format!("out_{}_{}", source.name(), record.partition);
    // Names the source commit: a redelivery within the duplicate window is stored once.
    let command_id = format!("fan-{}-{}-{}", source.name(), record.partition, record.sequence);
    let events = messages
        .into_iter()
        .map(|p| envelope(&tenant, "outbox", &outbox, &command_id, p))
        .collect();
    let commit = NewCommit {
        context: LogContext::WEBHOOK,
        tenant_id: tenant.clone(),
        aggregate_id: outbox,
        command_id,
        events,
        trace: record.trace.clone(),
    };
    match log.append(commit, Expected::Any).await {
        Ok(appended) => {
            endpoints.metrics().messages_made(count);
            // Stored is all the acknowledgement needs; the workers look once the state has it.
            let state = endpoints.state().clone();
            tokio::spawn(async move {
                let applied = state.applied(appended.partition, appended.sequence);
                if tokio::time::timeout(Duration::from_secs(10), applied).await.is_ok() {
                    for endpoint in woken {
                        dispatcher.wake(&tenant, &endpoint);
                    }
                }
            });
            Outcome::Done
        }
        Err(error) => Outcome::Retry {
            after: Duration::from_millis(500),
            reason: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_per_endpoint_and_event() {
        let a = message_id("whk_1", "01890a5d-ac96-774b-bcce-b302099a8057");
        assert_eq!(a, message_id("whk_1", "01890a5d-ac96-774b-bcce-b302099a8057"));
        assert_ne!(a, message_id("whk_2", "01890a5d-ac96-774b-bcce-b302099a8057"));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
    }
}
