//! The OpenAPI 3.1 description of the whole HTTP API, generated from the handlers and types:
//! the REST routes, the admin routes and the live event routes.
//!
//! What every REST route shares (authentication failures, problem documents for bad bodies and
//! unknown ids, `Idempotency-Key` on POST) is added here once rather than repeated on each route.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::problem::{Problem, ProblemKind};
use crate::rest::idempotency::MAX_KEY_CHARS;

/// Where the committed copy lives, relative to the workspace root.
#[cfg(test)]
const COMMITTED_PATH: &str = "openapi/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Yiwaiwai API",
        description = "The customer-service conversation platform's public HTTP API.\n\n\
            Authenticate with an API key: `Authorization: Bearer yy_…`. Every call acts within \
            the key's tenant; another tenant's ids answer 404 exactly like ids that do not exist.\n\n\
            Errors are RFC 9457 problem documents (`application/problem+json`) whose `type` is a \
            stable `/problems/<slug>` (see the `ProblemType` schema); match on it, not on `title` or \
            `detail`.\n\n\
            Every response carries `X-Request-Id`: the client's own when it sends one (at most 128 \
            visible ASCII characters), else a new one. Quote it when reporting a problem.\n\n\
            POST requests accept an `Idempotency-Key`: a retry with the same key and the same \
            request is answered with the first response (marked `Idempotent-Replayed: true`) \
            instead of being carried out again.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    tags(
        (name = "contacts", description = "Customers and their identities on each channel"),
        (name = "conversations", description = "Conversations with contacts: status, assignment, tags, ratings"),
        (name = "messages", description = "The messages of a conversation"),
        (name = "routing", description = "Routing rules and intents: who answers each customer message, the bot or a human agent"),
        (name = "queues", description = "Queues of conversations waiting for agents, and where a conversation stands in them"),
        (name = "agents", description = "Agents: skills, languages, capacity and presence"),
        (name = "agent workspace", description = "An agent's offers and conversations: accept, reply, note, transfer, resolve"),
        (name = "webhooks", description = "Endpoints that receive the tenant's events as signed HTTP POSTs (Standard Webhooks): their messages, delivery attempts and replays, and the event catalogue"),
        (name = "tickets", description = "Tickets: from conversations or on their own, with status changes, comments, linked conversations, history and SLA due times; kept in step with the tenant's ticket system"),
        (name = "connectors", description = "Connections to the tenant's external ticket system, CRM and knowledge-base feeds: configuration (secrets write-only), health and recent errors, CRM lookups and feed pushes"),
        (name = "inbound webhooks", description = "Where external ticket systems POST their updates, authenticated by an HMAC signature instead of an API key"),
        (name = "meta", description = "This description"),
    )
)]
struct RestApi;

/// The base document: info, tags and the shared schemas; the routes add their paths.
pub fn base() -> utoipa::openapi::OpenApi {
    RestApi::openapi()
}

/// The OpenAPI document served at `/v1/openapi.json`, as JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

/// The document as committed: pretty JSON with a final newline.
#[cfg(test)]
fn committed_text() -> String {
    let mut text = serde_json::to_string_pretty(document()).unwrap_or_default();
    text.push('\n');
    text
}

fn build() -> Value {
    let mut doc = super::api().split_for_parts().1;
    // Only the REST routes get the shared additions; the admin and live routes describe their own.
    let rest_operations: Vec<(String, String)> = serde_json::to_value(&doc.paths)
        .ok()
        .and_then(|paths| {
            paths.as_object().map(|paths| {
                paths
                    .iter()
                    .filter(|(path, _)| path.as_str() != "/v1/openapi.json")
                    .flat_map(|(path, item)| {
                        item.as_object()
                            .into_iter()
                            .flat_map(|item| item.keys())
                            .map(move |method| (path.clone(), method.clone()))
                    })
                    .collect()
            })
        })
        .unwrap_or_default();
    doc.merge(crate::iam::openapi());
    doc.merge(crate::live::openapi());
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    let schemes = doc
        .pointer_mut("/components")
        .and_then(Value::as_object_mut)
        .map(|components| components.entry("securitySchemes").or_insert_with(|| json!({})));
    if let Some(Value::Object(schemes)) = schemes {
        // The admin API's description normally brings it; this keeps the REST routes' reference
        // valid on its own.
        schemes.entry("api_key").or_insert_with(|| {
            json!({
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "yy_ and 40 letters and digits",
                "description": "An API key issued to the tenant through the admin API."
            })
        });
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.insert("ProblemType".into(), problem_types());
    }
    if let Some(Value::Object(type_field)) = doc.pointer_mut("/components/schemas/Problem/properties/type") {
        // OpenAPI 3.1 allows siblings beside `$ref`: the field keeps its description.
        type_field.remove("type");
        type_field.insert("$ref".into(), json!("#/components/schemas/ProblemType"));
    }
    for (path, method) in rest_operations {
        if let Some(Value::Object(operation)) = doc.pointer_mut(&format!("/paths/{}/{method}", pointer_token(&path))) {
            add_shared(&path, &method, operation);
        }
    }
    doc
}

/// `path` as one JSON pointer token (RFC 6901).
fn pointer_token(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// Every `type` a problem document may have.
fn problem_types() -> Value {
    let mut description = String::from(
        "The `type` of a problem document: `/problems/<slug>`, stable. The HTTP status of each:\n\n\
         | type | status | meaning |\n|---|---|---|\n",
    );
    for kind in ProblemKind::ALL {
        description.push_str(&format!(
            "| `/problems/{}` | {} | {} |\n",
            kind.slug(),
            kind.status().as_u16(),
            kind.title()
        ));
    }
    json!({
        "type": "string",
        "description": description,
        "enum": ProblemKind::ALL.map(|kind| format!("/problems/{}", kind.slug())),
    })
}

/// Adds what every REST operation shares to `operation` (of `method` on `path`), keeping what
/// the route itself says about the same status.
fn add_shared(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let has_body = operation.contains_key("requestBody");
    let has_id = path.contains('{');
    let has_query = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|params| params.iter().any(|p| p["in"] == "query"));
    // A route without the API key (an external system's signed webhook) describes its own 401,
    // answers no 404 whatever its path holds, reads any body as bytes, and takes no
    // `Idempotency-Key`, which is scoped to a key's tenant.
    let keyed = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|schemes| schemes.iter().any(|s| s.get("api_key").is_some()));
    let is_post = method == "post" && keyed;

    let mut shared: Vec<(u16, ProblemKind, &str)> = Vec::new();
    if keyed {
        shared.push((
            401,
            ProblemKind::Unauthorized,
            "No API key, or one that is unknown or revoked (`unauthorized`)",
        ));
    }
    shared.extend([
        (
            503,
            ProblemKind::Unavailable,
            "A service behind the gateway cannot be reached (`unavailable`); retrying later is safe",
        ),
        (
            500,
            ProblemKind::Internal,
            "An unexpected failure (`internal`); it is logged with the request id",
        ),
    ]);
    if has_id && keyed {
        shared.push((
            404,
            ProblemKind::NotFound,
            "No such resource in the caller's tenant (`not-found`)",
        ));
    }
    if has_body && !keyed {
        shared.push((
            413,
            ProblemKind::RequestTooLarge,
            "The body is larger than the gateway accepts (`request-too-large`)",
        ));
    } else if has_body {
        shared.extend([
            (
                400,
                ProblemKind::MalformedRequest,
                "The body is not valid JSON or not UTF-8 (`malformed-request`)",
            ),
            (
                413,
                ProblemKind::RequestTooLarge,
                "The body is larger than the gateway accepts (`request-too-large`)",
            ),
            (
                415,
                ProblemKind::UnsupportedMediaType,
                "The body is not sent as `application/json` (`unsupported-media-type`)",
            ),
        ]);
    }
    if has_body || has_query {
        shared.push((
            422,
            ProblemKind::ValidationFailed,
            "A field or parameter is missing, unknown, of the wrong type or out of range \
             (`validation-failed`); `detail` names it",
        ));
    }
    if is_post {
        shared.extend([
            (
                409,
                ProblemKind::IdempotencyKeyInUse,
                "A request with the same `Idempotency-Key` is still being processed \
                 (`idempotency-key-in-use`); retry shortly",
            ),
            (
                422,
                ProblemKind::IdempotencyKeyReused,
                "The `Idempotency-Key` was used before with another request (`idempotency-key-reused`)",
            ),
        ]);
    }

    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    for (status, kind, description) in shared {
        match responses.get_mut(&status.to_string()) {
            Some(Value::Object(existing)) => {
                let before = existing
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !before.contains(&format!("`{}`", kind.slug())) {
                    let joined = if before.is_empty() {
                        description.to_owned()
                    } else {
                        format!("{before}; or {}{}", description[..1].to_lowercase(), &description[1..])
                    };
                    existing.insert("description".into(), Value::String(joined));
                }
            }
            _ => {
                responses.insert(
                    status.to_string(),
                    json!({
                        "description": description,
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"},
                                "example": example(kind),
                            }
                        }
                    }),
                );
            }
        }
    }
    for (status, response) in responses.iter_mut() {
        if let Value::Object(response) = response {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            headers[REQUEST_ID_HEADER_NAME] = json!({
                "description": "The request's id: the client's own when it sent a usable one, else a new one",
                "schema": {"type": "string"}
            });
            if is_post && status.starts_with('2') {
                headers[REPLAYED_HEADER_NAME] = json!({
                    "description": "`true` when this is the stored response to an earlier request with the same `Idempotency-Key`",
                    "schema": {"type": "string", "enum": ["true"]}
                });
            }
        }
    }

    let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
    if let Value::Array(parameters) = parameters {
        parameters.push(json!({
            "name": REQUEST_ID_HEADER_NAME,
            "in": "header",
            "required": false,
            "description": "An id for this request, echoed in the response and the logs. One of at most 128 visible \
                ASCII characters is kept; any other is replaced by a new id rather than refused.",
            "schema": {"type": "string"},
            "example": "req-2f9c1e"
        }));
        if is_post {
            parameters.push(json!({
                "name": IDEMPOTENCY_KEY_HEADER_NAME,
                "in": "header",
                "required": false,
                "description": "Makes retries safe: a request with the same key and the same method, path and body \
                    for at least 24 hours is answered with the first one's response instead of being carried out again. \
                    Keys are scoped to the tenant. Use a new random value (such as a UUID) per logical request.",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                "example": "0196f7b2-c1d0-7a1b-9e3c-5d2f4a6b8c0e"
            }));
        }
    }
}

const REQUEST_ID_HEADER_NAME: &str = "X-Request-Id";
const IDEMPOTENCY_KEY_HEADER_NAME: &str = "Idempotency-Key";
const REPLAYED_HEADER_NAME: &str = "Idempotent-Replayed";

fn example(kind: ProblemKind) -> Value {
    let detail = match kind {
        ProblemKind::Unauthorized => "a valid API key is required: `Authorization: Bearer yy_…`",
        ProblemKind::NotFound => "no conversation conv_0196f7b2c1d07a1b9e3c5d2f4a6b8c0e",
        ProblemKind::MalformedRequest => "the body is not valid JSON in UTF-8: expected value at line 1 column 1",
        ProblemKind::ValidationFailed => {
            "role: unknown variant `client`, expected one of `customer`, `bot`, `agent`, `system`"
        }
        ProblemKind::UnsupportedMediaType => "send the body with `Content-Type: application/json`",
        ProblemKind::RequestTooLarge => "the request body must be at most 1048576 bytes",
        ProblemKind::IdempotencyKeyInUse => {
            "a request with this Idempotency-Key is still being processed; retry shortly"
        }
        ProblemKind::IdempotencyKeyReused => {
            "this Idempotency-Key was used with another request (method, path or body); use a new key"
        }
        ProblemKind::Unavailable => "the conversation service is unavailable",
        _ => "",
    };
    serde_json::to_value(Problem::new(kind, detail)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_file() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(COMMITTED_PATH)
    }

    /// The committed copy is what reviewers and client generators read; it must not drift from
    /// what the gateway serves.
    #[test]
    fn openapi_matches_the_committed_document() {
        let path = committed_file();
        let generated = committed_text();
        if std::env::var_os("YY_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create openapi/");
            std::fs::write(&path, &generated).expect("write the OpenAPI document");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} differs from the generated OpenAPI document.\n\
             Update it with: YY_UPDATE_OPENAPI=1 cargo nextest run -p yy-gateway openapi\n\
             and review the diff.",
            COMMITTED_PATH
        );
    }

    #[test]
    fn openapi_documents_every_rest_route_with_its_problems() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let expected = [
            ("/v1/contacts", "post"),
            ("/v1/contacts/{contact_id}", "get"),
            ("/v1/contacts/{contact_id}/identities", "post"),
            ("/v1/contacts/{contact_id}/merge", "post"),
            ("/v1/contacts/{contact_id}/conversations", "get"),
            ("/v1/conversations", "post"),
            ("/v1/conversations", "get"),
            ("/v1/conversations/{conversation_id}", "get"),
            ("/v1/conversations/{conversation_id}", "patch"),
            ("/v1/conversations/{conversation_id}/resolve", "post"),
            ("/v1/conversations/{conversation_id}/reopen", "post"),
            ("/v1/conversations/{conversation_id}/messages", "post"),
            ("/v1/conversations/{conversation_id}/messages", "get"),
            ("/v1/conversations/{conversation_id}/csat", "post"),
            ("/v1/conversations/{conversation_id}/routing", "get"),
            ("/v1/conversations/{conversation_id}/notes", "get"),
            ("/v1/routing/rules", "get"),
            ("/v1/routing/rules", "put"),
            ("/v1/routing/intents", "get"),
            ("/v1/routing/intents", "put"),
            ("/v1/routing/analyze", "post"),
            ("/v1/queues", "get"),
            ("/v1/queues/{queue}", "put"),
            ("/v1/agents", "get"),
            ("/v1/agents/{agent_id}", "get"),
            ("/v1/agents/{agent_id}", "put"),
            ("/v1/agents/{agent_id}/presence", "put"),
            ("/v1/agents/{agent_id}/conversations", "get"),
            ("/v1/agents/{agent_id}/offers/{conversation_id}/accept", "post"),
            ("/v1/agents/{agent_id}/offers/{conversation_id}/reject", "post"),
            ("/v1/agents/{agent_id}/conversations/{conversation_id}/reply", "post"),
            ("/v1/agents/{agent_id}/conversations/{conversation_id}/notes", "post"),
            ("/v1/agents/{agent_id}/conversations/{conversation_id}/transfer", "post"),
            ("/v1/agents/{agent_id}/conversations/{conversation_id}/resolve", "post"),
            ("/v1/webhooks/endpoints", "post"),
            ("/v1/webhooks/endpoints", "get"),
            ("/v1/webhooks/endpoints/{endpoint_id}", "get"),
            ("/v1/webhooks/endpoints/{endpoint_id}", "patch"),
            ("/v1/webhooks/endpoints/{endpoint_id}", "delete"),
            ("/v1/webhooks/endpoints/{endpoint_id}/enable", "post"),
            ("/v1/webhooks/endpoints/{endpoint_id}/disable", "post"),
            ("/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", "post"),
            ("/v1/webhooks/endpoints/{endpoint_id}/messages", "get"),
            ("/v1/webhooks/endpoints/{endpoint_id}/attempts", "get"),
            (
                "/v1/webhooks/endpoints/{endpoint_id}/messages/{message_id}/attempts",
                "get",
            ),
            ("/v1/webhooks/endpoints/{endpoint_id}/replay", "post"),
            ("/v1/webhooks/event-types", "get"),
            ("/v1/tickets", "post"),
            ("/v1/tickets", "get"),
            ("/v1/tickets/{ticket_id}", "get"),
            ("/v1/tickets/{ticket_id}", "patch"),
            ("/v1/tickets/{ticket_id}/status", "post"),
            ("/v1/tickets/{ticket_id}/comments", "post"),
            ("/v1/tickets/{ticket_id}/conversations", "post"),
            ("/v1/tickets/{ticket_id}/conversations/{conversation_id}", "delete"),
            ("/v1/tickets/{ticket_id}/history", "get"),
            ("/v1/conversations/{conversation_id}/tickets", "post"),
            ("/v1/sla-policies", "get"),
            ("/v1/sla-policies", "put"),
            ("/v1/connectors", "post"),
            ("/v1/connectors", "get"),
            ("/v1/connectors/{connector_id}", "get"),
            ("/v1/connectors/{connector_id}", "put"),
            ("/v1/connectors/{connector_id}", "delete"),
            ("/v1/connectors/{connector_id}/health", "get"),
            ("/v1/connectors/{connector_id}/kb-feed", "post"),
            ("/v1/contacts/{contact_id}/crm-profile", "post"),
            ("/v1/openapi.json", "get"),
        ];
        for (path, method) in expected {
            let operation = &doc["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(operation["summary"].is_string(), "{method} {path} has no summary");
            if path != "/v1/openapi.json" {
                assert_eq!(operation["security"][0]["api_key"], json!([]), "{method} {path}");
                assert_eq!(
                    operation["responses"]["401"]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
            }
            if method == "post" {
                let params = operation["parameters"].as_array().expect("parameters");
                assert!(params.iter().any(|p| p["name"] == "Idempotency-Key"), "{path}");
            }
        }
        // The inbound webhook has no key to present: its signature is its only credential, and
        // nothing it answers before the signature verifies tells whether a tenant or connector
        // exists (a signed update about an unknown ticket is the sender's to know: 404).
        let inbound = &doc["paths"]["/v1/inbound/tickets/{tenant_id}/{connector_id}"]["post"];
        assert!(inbound["summary"].is_string());
        assert_eq!(inbound["security"], json!([{}]));
        let params = inbound["parameters"].as_array().expect("parameters");
        assert!(params.iter().any(|p| p["name"] == "X-Signature" && p["in"] == "header"));
        assert!(!params.iter().any(|p| p["name"] == "Idempotency-Key"));
        assert_eq!(
            inbound["responses"]["401"]["content"]["application/problem+json"]["example"]["type"],
            "/problems/unauthorized"
        );
        for absent in ["400", "415"] {
            assert!(inbound["responses"][absent].is_null(), "{absent}");
        }
        assert!(inbound["responses"]["413"].is_object());
        assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
        let types = doc["components"]["schemas"]["ProblemType"]["enum"]
            .as_array()
            .expect("problem types");
        assert_eq!(types.len(), ProblemKind::ALL.len());
        for schema in [
            "Conversation",
            "Message",
            "Contact",
            "PostMessage",
            "Status",
            "Priority",
            "Role",
            "Problem",
            "RuleSet",
            "RuleSetBody",
            "IntentSet",
            "Analysis",
            "Agent",
            "AgentProfile",
            "AgentConversation",
            "Handoff",
            "Transfer",
            "Queue",
            "PutQueue",
            "EscalationStep",
            "RoutingStatus",
            "Note",
            "Endpoint",
            "CreatedEndpoint",
            "CreateEndpoint",
            "UpdateEndpoint",
            "WebhookMessage",
            "Attempt",
            "Replay",
            "Replayed",
            "EventType",
            "Ticket",
            "TicketStatus",
            "CreateTicket",
            "CreateTicketFromConversation",
            "UpdateTicket",
            "ChangeStatus",
            "AddComment",
            "Comment",
            "TicketHistory",
            "SlaPolicies",
            "Connector",
            "ConnectorSettings",
            "ConnectorHealth",
            "ContactProfile",
            "InboundUpdate",
        ] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
}
