//! Updates from an external ticket system: its webhook, forwarded untouched by the gateway, is
//! verified (HMAC-SHA256 of the raw body under the connector's inbound secret) before a byte of
//! it is read, then turned into ticket events whose origin is the connector, so that they are
//! never sent back to it.

use aws_lc_rs::{digest, hmac};
use serde_json::Value;
use tonic::Status;
use yy_proto::ticket::v1 as pb;

use crate::connectors::{Gateway, text_at};
use crate::domain::{self, Actor, Changes, Command, STATUSES};
use crate::errors::{invalid, invalid_signature, invalid_state, not_found, rejected};
use crate::health::Health;
use crate::state::{Store, now_ms};

/// The largest webhook body accepted.
const MAX_BODY_BYTES: usize = 1 << 20;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks `signature` ("sha256=<hex>" or "<hex>") against the body, in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let signature = signature.trim();
    let hex_part = signature.strip_prefix("sha256=").unwrap_or(signature);
    let Some(tag) = unhex(&hex_part.to_ascii_lowercase()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).is_ok()
}

/// The signature header value an external system sends: for tests and documentation.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

pub async fn receive(
    store: &Store,
    gateway: &Gateway,
    health: &Health,
    tenant: &str,
    request: pb::ReceiveExternalUpdateRequest,
) -> Result<pb::ReceiveExternalUpdateResponse, Status> {
    let connector_id = request.connector_id.as_str();
    // Until the signature verifies, every refusal is the same `invalid-signature`, so a sender
    // learns nothing of which tenants and connectors exist; the reason goes to the log and to the
    // connector's health when there is one.
    let unverified = |reason: String| {
        tracing::info!(%tenant, connector_id, %reason, "an inbound webhook was refused before its signature was checked");
        invalid_signature("signature: does not verify for this connector")
    };
    let connector = store
        .read(tenant, |t| t.connectors.get(connector_id).cloned())
        .filter(|c| c.is_ticket_system())
        .ok_or_else(|| unverified(format!("no ticket-system connector {connector_id}")))?;
    let refuse = |status: Status| {
        health.inbound(tenant, connector_id, "refused", Some(status.message()));
        status
    };
    if !connector.config.enabled {
        return Err(refuse(unverified(format!("connector {connector_id} is disabled"))));
    }
    if connector.config.sealed_inbound_secret.is_empty() {
        return Err(refuse(unverified(format!(
            "connector {connector_id} has no inbound_secret: set one to accept its webhooks"
        ))));
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Err(refuse(invalid("body", format!("at most {MAX_BODY_BYTES} bytes"))));
    }
    let secret = gateway
        .open(
            tenant,
            connector_id,
            "inbound_secret",
            &connector.config.sealed_inbound_secret,
        )
        .map_err(|e| refuse(unverified(e.message)))?;
    if !verify(secret.as_bytes(), &request.body, &request.signature) {
        return Err(refuse(invalid_signature(
            "signature: does not match the body under the connector's inbound secret",
        )));
    }
    let body: Value = serde_json::from_slice(&request.body).map_err(|e| refuse(invalid("body", e)))?;
    let settings = connector.config.ticket_system.clone().unwrap_or_default();
    let mapping = settings.inbound.clone().unwrap_or_default();
    if mapping.external_id_pointer.is_empty() {
        return Err(refuse(invalid_state(format!(
            "connector {connector_id} has no ticket_system.inbound.external_id_pointer"
        ))));
    }
    let external_id = text_at(&body, &mapping.external_id_pointer).ok_or_else(|| {
        refuse(invalid(
            "body",
            format!("no external ticket id at {}", mapping.external_id_pointer),
        ))
    })?;
    let ticket_id = store
        .read(tenant, |t| {
            t.ticket_by_external(connector_id, &external_id).map(|t| t.id.clone())
        })
        .ok_or_else(|| not_found("ticket with external id", &external_id))?;

    let mut changes = Changes {
        actor: Actor::connector(connector_id),
        origin: connector_id.to_owned(),
        ..Changes::default()
    };
    if let Some(theirs) = text_at(&body, &mapping.status_pointer) {
        let ours = mapping
            .status_map
            .get(&theirs)
            .cloned()
            .or_else(|| {
                settings
                    .status_map
                    .iter()
                    .find(|(_, t)| **t == theirs)
                    .map(|(o, _)| o.clone())
            })
            .unwrap_or_else(|| theirs.clone());
        if !STATUSES.contains(&ours.as_str()) {
            return Err(refuse(invalid(
                "body",
                format!("status {theirs:?} maps to no status here; add it to ticket_system.inbound.status_map"),
            )));
        }
        changes.status = Some(ours);
    }
    if let Some(theirs) = text_at(&body, &mapping.priority_pointer) {
        let ours = settings
            .priority_map
            .iter()
            .find(|(_, t)| **t == theirs)
            .map_or(theirs.clone(), |(o, _)| o.clone());
        changes.priority = Some(ours);
    }
    changes.subject = text_at(&body, &mapping.subject_pointer);

    // A redelivered webhook is the same command: its id comes from the body.
    let fingerprint = hex(digest::digest(&digest::SHA256, &request.body).as_ref());
    let command_id = format!("inbound-{}", &fingerprint[..32]);
    let mut changed = store
        .execute(tenant, "ticket", &ticket_id, &command_id, |t| {
            let ticket = t.tickets.get(&ticket_id).cloned().unwrap_or_default();
            let ctx = domain::Context {
                now_ms: now_ms(),
                sla_minutes: t.sla_minutes.clone(),
                targets: t.targets(),
            };
            domain::decide(&ticket, Command::Update(changes.clone()), &ctx).map_err(|r| rejected(r, &ticket_id))
        })
        .await
        .map_err(&refuse)?;

    if let Some(text) = text_at(&body, &mapping.comment_pointer) {
        let public = if mapping.comment_public_pointer.is_empty() {
            true
        } else {
            body.pointer(&mapping.comment_public_pointer)
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        let comment_id = format!("cmt_{}", &fingerprint[..26]);
        let command = Command::Comment {
            comment_id,
            body: text,
            public,
            author: Actor::connector(connector_id),
            origin: connector_id.to_owned(),
        };
        changed |= store
            .execute(tenant, "ticket", &ticket_id, &format!("{command_id}-c"), |t| {
                let ticket = t.tickets.get(&ticket_id).cloned().unwrap_or_default();
                let ctx = domain::Context {
                    now_ms: now_ms(),
                    sla_minutes: t.sla_minutes.clone(),
                    targets: t.targets(),
                };
                domain::decide(&ticket, command.clone(), &ctx).map_err(|r| rejected(r, &ticket_id))
            })
            .await
            .map_err(&refuse)?;
    }
    health.inbound(
        tenant,
        connector_id,
        if changed { "applied" } else { "unchanged" },
        None,
    );
    Ok(pb::ReceiveExternalUpdateResponse { ticket_id, changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_same_body_and_secret() {
        let secret = b"0123456789abcdef-inbound";
        let body = br#"{"ticket": {"id": 7, "status": "solved"}}"#;
        let signature = sign(secret, body);
        assert!(verify(secret, body, &signature));
        assert!(verify(secret, body, signature.trim_start_matches("sha256=")));
        assert!(verify(
            secret,
            body,
            &signature.to_ascii_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify(secret, b"{}", &signature));
        assert!(!verify(b"another-secret-entirely", body, &signature));
        for bad in ["", "sha256=", "sha256=zz", "sha256=abc", "🙂🙂"] {
            assert!(!verify(secret, body, bad), "{bad:?}");
        }
    }
}
