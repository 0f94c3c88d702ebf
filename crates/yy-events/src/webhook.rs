//! The webhook context's public events: only what an endpoint's owner must hear about.

use serde_json::{Value, json};
use yy_eventlog::Payload;

use crate::WEBHOOK_ENDPOINT_DISABLED;

/// The public type and data of one stored webhook event of aggregate `aggregate_id`; messages
/// and delivery attempts are not public events (they would describe themselves without end).
pub(crate) fn map(aggregate_id: &str, payload: &Payload) -> Option<(&'static str, Value)> {
    match payload {
        Payload::WebhookEndpointDisabled(e) => Some((
            WEBHOOK_ENDPOINT_DISABLED,
            json!({
                "endpoint_id": aggregate_id,
                "reason": e.reason,
                "detail": (!e.detail.is_empty()).then_some(e.detail.as_str()),
            }),
        )),
        _ => None,
    }
}
