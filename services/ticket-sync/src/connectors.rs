//! Connectors: their configuration (validated, secrets sealed before they reach the log) and the
//! one way requests to external systems are made (templates rendered, authentication added,
//! answers bounded).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tonic::Status;
use yy_proto::ticket::v1 as pb;
use yy_seal::Sealer;

use crate::errors::{invalid, invalid_state};
use crate::state::Connector;
use crate::template::{Escape, Template, check_pointer};

pub const TICKET_ROOTS: &[&str] = &["ticket", "mapped", "external", "sync", "comment"];
pub const CRM_LOOKUP_ROOTS: &[&str] = &["contact"];
pub const CRM_SUMMARY_ROOTS: &[&str] = &["contact", "conversation"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The largest answer read from an external system; more is cut off as an error.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// The largest knowledge-base feed read: the knowledge base's own limit on one import.
pub const MAX_FEED_BYTES: usize = 16 << 20;
const DEFAULT_FEED_INTERVAL_SECS: u32 = 300;

/// Why a call to an external system failed: a message without secrets, and the HTTP status (0
/// when the system could not be reached or answered unreadably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub message: String,
    pub http_status: u32,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub http_status: u32,
    /// The JSON body; `Null` when empty or not JSON.
    pub body: Value,
}

/// Makes requests to external systems, and seals and opens connector secrets.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    sealer: Option<Arc<Sealer>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("sealing", &self.sealer.is_some())
            .finish()
    }
}

fn aad(tenant: &str, connector: &str, field: &str) -> String {
    format!("{tenant}/{connector}/{field}")
}

impl Gateway {
    pub fn new(sealer: Option<Sealer>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Redirects could carry credentials to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Gateway {
            http,
            sealer: sealer.map(Arc::new),
        })
    }

    fn seal(&self, tenant: &str, connector: &str, field: &str, secret: &str) -> Result<Vec<u8>, Status> {
        let sealer = self.sealer.as_ref().ok_or_else(|| {
            invalid_state("connector secrets cannot be stored: ticket_sync.secret_key is not configured")
        })?;
        sealer
            .seal(&aad(tenant, connector, field), secret.as_bytes())
            .map_err(|e| invalid_state(e.to_string()))
    }

    pub fn open(&self, tenant: &str, connector: &str, field: &str, sealed: &[u8]) -> Result<String, CallError> {
        let not_readable = |reason: String| CallError {
            message: reason,
            http_status: 0,
        };
        let sealer = self
            .sealer
            .as_ref()
            .ok_or_else(|| not_readable("ticket_sync.secret_key is not configured".into()))?;
        sealer
            .open_string(&aad(tenant, connector, field), sealed)
            .map_err(|e| not_readable(format!("the connector's {field}: {e}")))
    }

    /// Turns a configuration request into the event that stores it, secrets sealed. An empty
    /// secret keeps the stored one when the scheme is unchanged.
    pub fn configure(
        &self,
        tenant: &str,
        connector_id: &str,
        existing: Option<&Connector>,
        request: &pb::PutConnectorRequest,
        actor: pb::Actor,
    ) -> Result<pb::ConnectorConfigured, Status> {
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name", "required, at most 200 characters"));
        }
        if !matches!(request.kind.as_str(), "ticket_system" | "crm" | "kb_feed") {
            return Err(invalid("kind", "must be ticket_system, crm or kb_feed"));
        }
        if let Some(existing) = existing
            && existing.config.kind != request.kind
        {
            return Err(invalid_state(format!(
                "kind: connector {connector_id} is a {}; create another connector instead",
                existing.config.kind
            )));
        }
        check_base_url(&request.base_url)?;
        let timeout_ms = match request.timeout_ms {
            0 => DEFAULT_TIMEOUT_MS,
            t if (100..=60_000).contains(&t) => t,
            _ => return Err(invalid("timeout_ms", "100 to 60000")),
        };
        let old_auth = existing.and_then(|c| c.config.auth.clone()).unwrap_or_default();
        let keep = |kind: &str, given: &str, field: &str| -> Result<Vec<u8>, Status> {
            if !given.is_empty() {
                return self.seal(tenant, connector_id, "auth", given);
            }
            if old_auth.kind == kind && !old_auth.sealed_secret.is_empty() {
                return Ok(old_auth.sealed_secret.clone());
            }
            Err(invalid(field, "required"))
        };
        let auth = match request.auth.as_ref().and_then(|a| a.kind.as_ref()) {
            None => pb::StoredAuth {
                kind: "none".into(),
                ..Default::default()
            },
            Some(pb::auth::Kind::Bearer(bearer)) => pb::StoredAuth {
                kind: "bearer".into(),
                sealed_secret: keep("bearer", &bearer.token, "auth.bearer.token")?,
                ..Default::default()
            },
            Some(pb::auth::Kind::Basic(basic)) => {
                if basic.username.is_empty() || basic.username.contains(':') {
                    return Err(invalid("auth.basic.username", "required, without ':'"));
                }
                pb::StoredAuth {
                    kind: "basic".into(),
                    username: basic.username.clone(),
                    sealed_secret: keep("basic", &basic.password, "auth.basic.password")?,
                    ..Default::default()
                }
            }
            Some(pb::auth::Kind::ApiKey(key)) => {
                if HeaderName::from_bytes(key.header.as_bytes()).is_err() {
                    return Err(invalid("auth.api_key.header", "a valid header name"));
                }
                pb::StoredAuth {
                    kind: "api_key".into(),
                    header: key.header.clone(),
                    sealed_secret: keep("api_key", &key.key, "auth.api_key.key")?,
                    ..Default::default()
                }
            }
        };
        let sealed_inbound_secret = if !request.inbound_secret.is_empty() {
            if request.inbound_secret.len() < 16 {
                return Err(invalid("inbound_secret", "at least 16 characters"));
            }
            self.seal(tenant, connector_id, "inbound_secret", &request.inbound_secret)?
        } else {
            existing
                .map(|c| c.config.sealed_inbound_secret.clone())
                .unwrap_or_default()
        };
        let (ticket_system, crm, kb_feed) = match request.kind.as_str() {
            "ticket_system" => {
                let settings = request
                    .ticket_system
                    .clone()
                    .ok_or_else(|| invalid("ticket_system", "required for a ticket_system connector"))?;
                check_ticket_system(&settings)?;
                (Some(settings), None, None)
            }
            "crm" => {
                let settings = request
                    .crm
                    .clone()
                    .ok_or_else(|| invalid("crm", "required for a crm connector"))?;
                check_crm(&settings)?;
                (None, Some(settings), None)
            }
            _ => {
                let mut settings = request.kb_feed.clone().unwrap_or_default();
                check_kb_feed(&mut settings)?;
                (None, None, Some(settings))
            }
        };
        let config = pb::ConnectorConfigured {
            name: name.to_owned(),
            kind: request.kind.clone(),
            base_url: request.base_url.trim_end_matches('/').to_owned(),
            enabled: request.enabled,
            timeout_ms,
            auth: Some(auth),
            sealed_inbound_secret,
            ticket_system,
            crm,
            actor: Some(actor),
            kb_feed,
        };
        if crate::state::encoded_len(&config) > 256 * 1024 {
            return Err(invalid("connector", "the configuration is larger than 256 KiB"));
        }
        Ok(config)
    }

    /// Renders `template` with `context` and sends it through the connector.
    pub async fn call(
        &self,
        tenant: &str,
        connector: &Connector,
        template: &pb::RequestTemplate,
        context: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, CallError> {
        let config = &connector.config;
        let failed = |message: String| CallError {
            message,
            http_status: 0,
        };
        let render = |source: &str, escape: Escape| {
            Template::parse(source)
                .and_then(|t| t.render(context, escape))
                .map_err(|e| failed(format!("template: {e}")))
        };
        let method = reqwest::Method::from_bytes(template.method.as_bytes())
            .map_err(|_| failed(format!("method {:?}", template.method)))?;
        let path = render(&template.path, Escape::Url)?;
        let url = format!("{}{path}", config.base_url);
        let mut request = self
            .http
            .request(method, &url)
            .timeout(Duration::from_millis(u64::from(config.timeout_ms.max(100))));
        for (name, value) in &template.headers {
            let value = render(value, Escape::Header)?;
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| failed(format!("header {name:?}")))?;
            let value = HeaderValue::from_str(&value).map_err(|_| failed(format!("header {name} value")))?;
            request = request.header(name, value);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if !template.body.is_empty() {
            let body = render(&template.body, Escape::Json)?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let request = self.authenticate(request, tenant, connector)?;
        let response = request
            .send()
            .await
            .map_err(|e| failed(send_error(&template.method, &url, &e)))?;
        let status = u32::from(response.status().as_u16());
        let bytes = read_bounded(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| CallError {
                message: e,
                http_status: status,
            })?;
        if !(200..300).contains(&status) {
            let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err(CallError {
                message: format!(
                    "{} {} answered {status}: {}",
                    template.method,
                    redact_query(&url),
                    excerpt.replace(['\r', '\n'], " ")
                ),
                http_status: status,
            });
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            http_status: status,
            body,
        })
    }
}

impl Gateway {
    /// Adds the connector's credentials to `request`.
    fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        tenant: &str,
        connector: &Connector,
    ) -> Result<reqwest::RequestBuilder, CallError> {
        let Some(auth) = &connector.config.auth else {
            return Ok(request);
        };
        Ok(match auth.kind.as_str() {
            "bearer" => {
                let token = self.open(tenant, &connector.id, "auth", &auth.sealed_secret)?;
                request.bearer_auth(token)
            }
            "basic" => {
                let password = self.open(tenant, &connector.id, "auth", &auth.sealed_secret)?;
                request.basic_auth(&auth.username, Some(password))
            }
            "api_key" => {
                let key = self.open(tenant, &connector.id, "auth", &auth.sealed_secret)?;
                let mut value = HeaderValue::from_str(&key).map_err(|_| CallError {
                    message: "the API key is not a header value".into(),
                    http_status: 0,
                })?;
                value.set_sensitive(true);
                request.header(auth.header.as_str(), value)
            }
            _ => request,
        })
    }

    /// Fetches a knowledge-base feed, conditionally when validators of the last import are
    /// given, so that an unchanged feed costs its server one short answer.
    pub async fn fetch_feed(
        &self,
        tenant: &str,
        connector: &Connector,
        etag: &str,
        last_modified: &str,
    ) -> Result<Feed, CallError> {
        let config = &connector.config;
        let path = config.kb_feed.as_ref().map_or("", |f| f.path.as_str());
        let url = format!("{}{path}", config.base_url);
        let failed = |message: String, http_status: u32| CallError { message, http_status };
        let mut request = self
            .http
            .get(&url)
            .timeout(Duration::from_millis(u64::from(config.timeout_ms.max(100))))
            .header(reqwest::header::ACCEPT, "application/json");
        // Validators come from the feed's own earlier answers; one that is no longer a valid
        // header value is left out, which only costs a full download.
        if let Ok(value) = HeaderValue::from_str(etag)
            && !etag.is_empty()
        {
            request = request.header(reqwest::header::IF_NONE_MATCH, value);
        }
        if let Ok(value) = HeaderValue::from_str(last_modified)
            && !last_modified.is_empty()
        {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, value);
        }
        let request = self.authenticate(request, tenant, connector)?;
        let response = request
            .send()
            .await
            .map_err(|e| failed(send_error("GET", &url, &e), 0))?;
        let status = u32::from(response.status().as_u16());
        if status == 304 {
            return Ok(Feed::NotModified);
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let bytes = read_bounded(response, MAX_FEED_BYTES)
            .await
            .map_err(|e| failed(e, status))?;
        if status != 200 {
            let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            return Err(failed(
                format!(
                    "GET {} answered {status}: {}",
                    redact_query(&url),
                    excerpt.replace(['\r', '\n'], " ")
                ),
                status,
            ));
        }
        Ok(Feed::Document {
            body: bytes,
            etag,
            last_modified,
        })
    }
}

/// A knowledge-base feed's answer.
#[derive(Debug)]
pub enum Feed {
    /// The feed is as it was at the last import (304).
    NotModified,
    /// The feed's document and its validators (empty when the server sent none).
    Document {
        body: Vec<u8>,
        etag: String,
        last_modified: String,
    },
}

fn send_error(method: &str, url: &str, e: &reqwest::Error) -> String {
    // reqwest's message names the URL, which holds no secret (base URLs cannot carry
    // credentials); the error's source chain is left out as it can be long.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{method} {}: {kind}", redact_query(url))
}

/// A URL for logs and errors: without its query, which may carry identifiers of customers.
fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
        if bytes.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn check_base_url(url: &str) -> Result<(), Status> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("base_url", "an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("base_url", "an http:// or https:// URL with a host"));
    }
    if authority.contains('@') {
        return Err(invalid("base_url", "must not carry credentials; use auth"));
    }
    if url.contains(['?', '#']) {
        return Err(invalid("base_url", "must not have a query or fragment"));
    }
    Ok(())
}

fn check_template(field: &str, template: &pb::RequestTemplate, roots: &[&str], required: bool) -> Result<(), Status> {
    if template.method.is_empty() && template.path.is_empty() && template.body.is_empty() {
        return if required {
            Err(invalid(field, "required"))
        } else {
            Ok(())
        };
    }
    if !METHODS.contains(&template.method.as_str()) {
        return Err(invalid(
            &format!("{field}.method"),
            format!("one of {}", METHODS.join(", ")),
        ));
    }
    if !template.path.starts_with('/') {
        return Err(invalid(&format!("{field}.path"), "must start with '/'"));
    }
    let parse = |name: &str, source: &str, escape: Escape| {
        Template::parse(source)
            .and_then(|t| t.check(roots, escape))
            .map_err(|e| invalid(&format!("{field}.{name}"), e))
    };
    parse("path", &template.path, Escape::Url)?;
    parse("body", &template.body, Escape::Json)?;
    for (name, value) in &template.headers {
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err()
            || matches!(lower.as_str(), "host" | "content-length" | "idempotency-key")
        {
            return Err(invalid(
                &format!("{field}.headers"),
                format!("header {name:?} cannot be set"),
            ));
        }
        parse(&format!("headers.{name}"), value, Escape::Header)?;
    }
    Ok(())
}

fn check_pointer_field(field: &str, pointer: &str) -> Result<(), Status> {
    check_pointer(pointer).map_err(|e| invalid(field, e))
}

fn check_values(field: &str, map: &std::collections::HashMap<String, String>, allowed: &[&str]) -> Result<(), Status> {
    for (ours, theirs) in map {
        if !allowed.contains(&ours.as_str()) {
            return Err(invalid(field, format!("{ours:?} is not one of {}", allowed.join(", "))));
        }
        if theirs.is_empty() {
            return Err(invalid(field, format!("{ours:?} maps to nothing")));
        }
    }
    Ok(())
}

fn check_ticket_system(settings: &pb::TicketSystemSettings) -> Result<(), Status> {
    let empty = pb::RequestTemplate::default();
    check_template(
        "ticket_system.create",
        settings.create.as_ref().unwrap_or(&empty),
        TICKET_ROOTS,
        settings.outbound,
    )?;
    check_template(
        "ticket_system.update",
        settings.update.as_ref().unwrap_or(&empty),
        TICKET_ROOTS,
        false,
    )?;
    check_template(
        "ticket_system.comment",
        settings.comment.as_ref().unwrap_or(&empty),
        TICKET_ROOTS,
        false,
    )?;
    check_template(
        "ticket_system.search",
        settings.search.as_ref().unwrap_or(&empty),
        TICKET_ROOTS,
        false,
    )?;
    if settings.outbound && settings.external_id_pointer.is_empty() {
        return Err(invalid("ticket_system.external_id_pointer", "required"));
    }
    check_pointer_field("ticket_system.external_id_pointer", &settings.external_id_pointer)?;
    check_pointer_field("ticket_system.search_id_pointer", &settings.search_id_pointer)?;
    if settings.search.as_ref().is_some_and(|s| !s.method.is_empty()) && settings.search_id_pointer.is_empty() {
        return Err(invalid(
            "ticket_system.search_id_pointer",
            "required with a search template",
        ));
    }
    check_values(
        "ticket_system.status_map",
        &settings.status_map,
        crate::domain::STATUSES,
    )?;
    check_values(
        "ticket_system.priority_map",
        &settings.priority_map,
        crate::domain::PRIORITIES,
    )?;
    if let Some(inbound) = &settings.inbound {
        for (field, pointer) in [
            ("external_id_pointer", &inbound.external_id_pointer),
            ("status_pointer", &inbound.status_pointer),
            ("priority_pointer", &inbound.priority_pointer),
            ("subject_pointer", &inbound.subject_pointer),
            ("comment_pointer", &inbound.comment_pointer),
            ("comment_public_pointer", &inbound.comment_public_pointer),
        ] {
            check_pointer_field(&format!("ticket_system.inbound.{field}"), pointer)?;
        }
        for ours in inbound.status_map.values() {
            if !crate::domain::STATUSES.contains(&ours.as_str()) {
                return Err(invalid(
                    "ticket_system.inbound.status_map",
                    format!("{ours:?} is not one of {}", crate::domain::STATUSES.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

fn check_crm(settings: &pb::CrmSettings) -> Result<(), Status> {
    let empty = pb::RequestTemplate::default();
    check_template(
        "crm.lookup",
        settings.lookup.as_ref().unwrap_or(&empty),
        CRM_LOOKUP_ROOTS,
        true,
    )?;
    check_template(
        "crm.summary",
        settings.summary.as_ref().unwrap_or(&empty),
        CRM_SUMMARY_ROOTS,
        false,
    )?;
    if settings.attributes.is_empty() && settings.name_pointer.is_empty() {
        return Err(invalid(
            "crm.attributes",
            "map at least one attribute (or name_pointer)",
        ));
    }
    if settings.attributes.len() > 50 {
        return Err(invalid("crm.attributes", "at most 50"));
    }
    for (name, pointer) in &settings.attributes {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(invalid(
                "crm.attributes",
                format!("attribute {name:?}: 1-64 letters, digits, '_', '-' or '.'"),
            ));
        }
        if pointer.is_empty() {
            return Err(invalid(&format!("crm.attributes.{name}"), "a JSON pointer is required"));
        }
        check_pointer_field(&format!("crm.attributes.{name}"), pointer)?;
    }
    check_pointer_field("crm.name_pointer", &settings.name_pointer)
}

fn check_kb_feed(settings: &mut pb::KbFeedSettings) -> Result<(), Status> {
    let path = &settings.path;
    if !path.is_empty() && !path.starts_with('/') {
        return Err(invalid("kb_feed.path", "must start with '/'"));
    }
    if path.len() > 2048 || path.contains('#') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "kb_feed.path",
            "at most 2048 characters, without spaces or a fragment",
        ));
    }
    settings.interval_secs = match settings.interval_secs {
        0 => DEFAULT_FEED_INTERVAL_SECS,
        s if s <= 86_400 => s,
        _ => return Err(invalid("kb_feed.interval_secs", "1 to 86400")),
    };
    if settings.locales.len() > 50 || settings.tags.len() > 50 {
        return Err(invalid("kb_feed", "at most 50 locales and 50 tags"));
    }
    for locale in &settings.locales {
        if locale.is_empty() || locale.len() > 35 || !locale.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(invalid("kb_feed.locales", format!("{locale:?} is not a language tag")));
        }
    }
    for tag in &settings.tags {
        if tag.is_empty() || tag.chars().count() > 64 || tag.chars().any(char::is_whitespace) {
            return Err(invalid(
                "kb_feed.tags",
                format!("{tag:?}: 1-64 characters without spaces"),
            ));
        }
    }
    Ok(())
}

/// The connector as the API shows it: everything but its secrets.
pub fn view(connector: &Connector) -> pb::Connector {
    let config = &connector.config;
    let auth = config.auth.clone().unwrap_or_default();
    pb::Connector {
        id: connector.id.clone(),
        name: config.name.clone(),
        kind: config.kind.clone(),
        base_url: config.base_url.clone(),
        enabled: config.enabled,
        timeout_ms: config.timeout_ms,
        auth_kind: if auth.kind.is_empty() { "none".into() } else { auth.kind },
        auth_username: auth.username,
        auth_header: auth.header,
        has_inbound_secret: !config.sealed_inbound_secret.is_empty(),
        ticket_system: config.ticket_system.clone(),
        crm: config.crm.clone(),
        updated_at: Some(crate::domain::timestamp(connector.updated_at_ms)),
        kb_feed: config.kb_feed.clone(),
    }
}

/// The text at `pointer` in `body`: strings as they are, numbers and booleans in JSON notation;
/// `None` when absent, null or empty.
pub fn text_at(body: &Value, pointer: &str) -> Option<String> {
    if pointer.is_empty() {
        return None;
    }
    body.pointer(pointer)
        .map(crate::template::as_text)
        .filter(|t| !t.is_empty())
}
