//! The REST API under `/v1`: thin handlers over the conversation, routing, ticket-sync and webhook
//! services' gRPC APIs, plus what wraps the whole HTTP API (request ids, the body limit, problem
//! documents, idempotency keys).
//!
//! JSON is snake_case; enums are lowercase strings; times are RFC 3339. Request bodies refuse
//! unknown fields. Every error is an RFC 9457 problem document.

mod agents;
mod caller;
mod contacts;
mod conversations;
mod idempotency;
mod json;
mod layers;
mod model;
mod openapi;
mod query;
mod routing;
mod routing_model;
mod tickets;
mod tickets_model;
mod webhooks;
mod webhooks_model;

pub(crate) use json::Json;
pub(crate) use layers::REQUEST_ID as REQUEST_ID_HEADER;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// `/v1/…`, and the API's description at `/v1/openapi.json`.
pub fn routes() -> axum::Router<AppState> {
    api().split_for_parts().0
}

/// The routes with their OpenAPI description; both come from the same handlers, so neither can
/// miss a route the other has.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(contacts::upsert_contact))
        .routes(routes!(contacts::get_contact))
        .routes(routes!(contacts::link_identity))
        .routes(routes!(contacts::merge_contacts))
        .routes(routes!(contacts::list_contact_conversations))
        .routes(routes!(
            conversations::open_conversation,
            conversations::list_conversations
        ))
        .routes(routes!(
            conversations::get_conversation,
            conversations::update_conversation
        ))
        .routes(routes!(conversations::resolve_conversation))
        .routes(routes!(conversations::reopen_conversation))
        .routes(routes!(conversations::post_message, conversations::list_messages))
        .routes(routes!(conversations::submit_csat))
        .routes(routes!(routing::get_rules, routing::put_rules))
        .routes(routes!(routing::get_intents, routing::put_intents))
        .routes(routes!(routing::analyze))
        .routes(routes!(routing::list_queues))
        .routes(routes!(routing::put_queue))
        .routes(routes!(routing::get_routing_status))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent, agents::put_agent))
        .routes(routes!(agents::set_presence))
        .routes(routes!(agents::list_agent_conversations))
        .routes(routes!(agents::accept_offer))
        .routes(routes!(agents::reject_offer))
        .routes(routes!(agents::reply))
        .routes(routes!(agents::add_note))
        .routes(routes!(agents::transfer))
        .routes(routes!(agents::resolve))
        .routes(routes!(agents::list_notes))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(
            webhooks::get_endpoint,
            webhooks::update_endpoint,
            webhooks::delete_endpoint
        ))
        .routes(routes!(webhooks::enable_endpoint))
        .routes(routes!(webhooks::disable_endpoint))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::list_messages))
        .routes(routes!(webhooks::list_endpoint_attempts))
        .routes(routes!(webhooks::list_message_attempts))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::list_event_types))
        .routes(routes!(tickets::create_ticket, tickets::list_tickets))
        .routes(routes!(tickets::get_ticket, tickets::update_ticket))
        .routes(routes!(tickets::change_status))
        .routes(routes!(tickets::add_comment))
        .routes(routes!(tickets::link_conversation))
        .routes(routes!(tickets::unlink_conversation))
        .routes(routes!(tickets::get_history))
        .routes(routes!(tickets::create_from_conversation))
        .routes(routes!(tickets::get_sla_policies, tickets::put_sla_policies))
        .routes(routes!(tickets::create_connector, tickets::list_connectors))
        .routes(routes!(
            tickets::get_connector,
            tickets::reconfigure_connector,
            tickets::delete_connector
        ))
        .routes(routes!(tickets::get_connector_health))
        .routes(routes!(tickets::push_kb_feed))
        .routes(routes!(tickets::lookup_profile))
        .routes(routes!(tickets::receive_inbound))
        .routes(routes!(openapi_json))
}

/// Describe the API
///
/// This OpenAPI 3.1 document: the REST, admin and live event routes. No authentication needed.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> axum::response::Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::Json(openapi::document()),
    )
        .into_response()
}

/// Wraps the whole HTTP API (REST, admin, live), in order from the outside in:
///
/// 1. a request id on every request, its span and its response (`x-request-id`);
/// 2. problem documents for error responses that are not one yet;
/// 3. the body limit `api.max_body_bytes` (413 `request-too-large`);
/// 4. `Idempotency-Key` on POST requests;
/// 5. requests that change something run to completion even if the client hangs up;
///
/// and problem documents for unknown routes (404) and wrong methods (405).
pub fn middleware(router: axum::Router, state: &AppState) -> axum::Router {
    let limit = state.config.api.max_body_bytes;
    router
        .method_not_allowed_fallback(layers::method_not_allowed)
        .fallback(layers::not_found)
        .layer(from_fn(layers::finish_writes))
        .layer(from_fn_with_state(
            idempotency::Idempotency::new(state.clone()),
            idempotency::layer,
        ))
        .layer(from_fn_with_state(limit, layers::limit_body))
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn(layers::problems_only))
        .layer(from_fn(layers::request_id))
}
