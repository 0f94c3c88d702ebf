//! `/v1/routing`, `/v1/queues` and a conversation's place in them: how messages are routed to
//! the bot or to human agents, and where a waiting customer stands.

use axum::extract::{Path, State};
use yy_proto::routing::v1 as pb;

use crate::AppState;
use crate::problem::Problem;
use crate::rest::caller::Caller;
use crate::rest::json::{Json, JsonObjectText};
use crate::rest::routing_model::{
    Analysis, Analyze, IntentSet, PutIntents, PutQueue, Queue, QueueList, RoutingStatus, RuleSet, RuleSetBody,
};

const ROUTING: &str = "routing";
const QUEUES: &str = "queues";

/// Get the routing rules
///
/// The rules in force; version 0 is the built-in default set (a customer asking for a human, a
/// very unhappy one, or one the bot did not understand twice goes to the `general` queue;
/// everything else stays with the bot).
#[utoipa::path(
    get,
    path = "/v1/routing/rules",
    tag = ROUTING,
    responses(
        (status = 200, description = "The rules in force", body = RuleSet),
    ),
    security(("api_key" = []))
)]
pub async fn get_rules(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<RuleSet>, Problem> {
    let rules = state
        .routing
        .clone()
        .get_rules(caller.request(pb::GetRulesRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(rules.into()))
}

/// Publish routing rules
///
/// Publishes a new version of the rule set; it decides every customer message from then on. The
/// whole set is checked first, and every mistake is reported at once in the problem's `detail`,
/// naming the rule and the field (`rules[0] "vip-angry": when.sentiment.below: must be between -1
/// and 1`).
#[utoipa::path(
    put,
    path = "/v1/routing/rules",
    tag = ROUTING,
    request_body = RuleSetBody,
    responses(
        (status = 200, description = "The rules were published", body = RuleSet),
        (status = 422, description = "The rule set is not valid (`validation-failed`); `detail` lists every mistake by rule and field, or the version is not greater than the one in force",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/validation-failed",
                "title": "The request is not valid",
                "status": 422,
                "detail": "rules: rules[0] \"vip-angry\": when.sentiment.below: must be between -1 and 1; rules[1] \"refunds\": then.priority: must be between 1 and 10"
            })),
    ),
    security(("api_key" = []))
)]
pub async fn put_rules(
    State(state): State<AppState>,
    caller: Caller,
    JsonObjectText(rules_json): JsonObjectText,
) -> Result<axum::Json<RuleSet>, Problem> {
    let rules = state
        .routing
        .clone()
        .put_rules(caller.request(pb::PutRulesRequest { rules_json }))
        .await?
        .into_inner();
    Ok(axum::Json(rules.into()))
}

/// Get the intents
///
/// The intents customer messages are classified with: the built-in bilingual set, the tenant's
/// own, or both.
#[utoipa::path(
    get,
    path = "/v1/routing/intents",
    tag = ROUTING,
    responses(
        (status = 200, description = "The intents in force", body = IntentSet),
    ),
    security(("api_key" = []))
)]
pub async fn get_intents(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<IntentSet>, Problem> {
    let intents = state
        .routing
        .clone()
        .get_intents(caller.request(pb::GetIntentsRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(intents.into()))
}

/// Set the intents
///
/// Extends or replaces the built-in intents with the tenant's own, each learnt from at least
/// three example messages. Messages are classified with them from then on.
#[utoipa::path(
    put,
    path = "/v1/routing/intents",
    tag = ROUTING,
    request_body = PutIntents,
    responses(
        (status = 200, description = "The intents in force now", body = IntentSet),
    ),
    security(("api_key" = []))
)]
pub async fn put_intents(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PutIntents>,
) -> Result<axum::Json<IntentSet>, Problem> {
    let intents = state
        .routing
        .clone()
        .put_intents(caller.request(body.into_proto()))
        .await?
        .into_inner();
    Ok(axum::Json(intents.into()))
}

/// Try the rules on a message
///
/// Understands a text and decides as the rules in force would, with the reason each earlier rule
/// did not match. Nothing is recorded: for trying rules and intents out.
#[utoipa::path(
    post,
    path = "/v1/routing/analyze",
    tag = ROUTING,
    request_body = Analyze,
    responses(
        (status = 200, description = "What the message says and what the rules would do", body = Analysis),
    ),
    security(("api_key" = []))
)]
pub async fn analyze(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Analyze>,
) -> Result<axum::Json<Analysis>, Problem> {
    let analysis = state
        .routing
        .clone()
        .analyze(caller.request(body.into_proto()))
        .await?
        .into_inner();
    Ok(axum::Json(analysis.into()))
}

/// List queues
///
/// Every queue with its settings and the conversations waiting in it, by name.
#[utoipa::path(
    get,
    path = "/v1/queues",
    tag = QUEUES,
    responses(
        (status = 200, description = "The queues", body = QueueList),
    ),
    security(("api_key" = []))
)]
pub async fn list_queues(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<QueueList>, Problem> {
    let queues = state
        .routing
        .clone()
        .list_queues(caller.request(pb::ListQueuesRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(QueueList {
        queues: queues.queues.into_iter().map(Queue::from).collect(),
    }))
}

/// Create or change a queue
///
/// Sets all of a queue's settings: how it picks agents, how long an offer stands, its service
/// targets and its escalation steps. Conversations already waiting keep their place.
#[utoipa::path(
    put,
    path = "/v1/queues/{queue}",
    tag = QUEUES,
    params(("queue" = String, Path, description = "The queue's name: 1 to 64 of `a-z`, `0-9`, `_` and `-`")),
    request_body = PutQueue,
    responses(
        (status = 200, description = "The queue as it is now", body = Queue),
    ),
    security(("api_key" = []))
)]
pub async fn put_queue(
    State(state): State<AppState>,
    caller: Caller,
    Path(queue): Path<String>,
    Json(body): Json<PutQueue>,
) -> Result<axum::Json<Queue>, Problem> {
    let request = body.into_proto(queue)?;
    let queue = state
        .routing
        .clone()
        .put_queue(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(queue.into()))
}

/// Where a conversation stands
///
/// With the bot, waiting for an agent (with its place in the queue and an estimated wait),
/// offered to an agent, or assigned to one. For the customer's app.
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}/routing",
    tag = QUEUES,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    responses(
        (status = 200, description = "Where the conversation stands", body = RoutingStatus),
    ),
    security(("api_key" = []))
)]
pub async fn get_routing_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
) -> Result<axum::Json<RoutingStatus>, Problem> {
    let status = state
        .routing
        .clone()
        .get_routing_status(caller.request(pb::GetRoutingStatusRequest { conversation_id }))
        .await?
        .into_inner();
    Ok(axum::Json(status.into()))
}
