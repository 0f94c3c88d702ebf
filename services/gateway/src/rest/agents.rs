//! `/v1/agents`: agents, their presence, and the agent workspace (offers, replies, notes,
//! transfers, resolving).
//!
//! The business's backend authenticates its agents and calls on their behalf: the acting agent is
//! named in the path, and the routing service checks that the conversation is theirs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yy_proto::routing::v1 as pb;

use crate::AppState;
use crate::problem::Problem;
use crate::rest::caller::Caller;
use crate::rest::json::Json;
use crate::rest::model::{Conversation, Message};
use crate::rest::routing_model::{
    AddNote, Agent, AgentConversation, AgentConversationList, AgentList, AgentProfile, Note, NoteList, Reply,
    RoutingStatus, SetPresence, Transfer,
};

const AGENTS: &str = "agents";
const WORKSPACE: &str = "agent workspace";

/// List agents
///
/// Every agent of the tenant, by id, with their presence and conversations.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = AGENTS,
    responses(
        (status = 200, description = "The agents", body = AgentList),
    ),
    security(("api_key" = []))
)]
pub async fn list_agents(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<AgentList>, Problem> {
    let agents = state
        .routing
        .clone()
        .list_agents(caller.request(pb::ListAgentsRequest {}))
        .await?
        .into_inner();
    Ok(axum::Json(AgentList {
        agents: agents.agents.into_iter().map(Agent::from).collect(),
    }))
}

/// Get an agent
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}",
    tag = AGENTS,
    params(("agent_id" = String, Path, description = "The agent (`agt_…`)")),
    responses(
        (status = 200, description = "The agent", body = Agent),
    ),
    security(("api_key" = []))
)]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<axum::Json<Agent>, Problem> {
    let agent = state
        .routing
        .clone()
        .get_agent(caller.request(pb::GetAgentRequest { agent_id }))
        .await?
        .into_inner();
    Ok(axum::Json(agent.into()))
}

/// Create or change an agent
///
/// Sets the agent's whole profile: skills, languages, capacity per channel and the queues served.
/// A new agent starts offline. Offers the agent no longer fits are withdrawn.
#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}",
    tag = AGENTS,
    params(("agent_id" = String, Path, description = "The agent: `agt_` followed by 1 to 64 letters, digits, `_` or `-`")),
    request_body = AgentProfile,
    responses(
        (status = 200, description = "The agent as it is now", body = Agent),
    ),
    security(("api_key" = []))
)]
pub async fn put_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    Json(profile): Json<AgentProfile>,
) -> Result<axum::Json<Agent>, Problem> {
    let request = pb::PutAgentRequest {
        agent_id,
        profile: Some(profile.into_proto()),
    };
    let agent = state
        .routing
        .clone()
        .put_agent(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(agent.into()))
}

/// Set an agent's presence
///
/// Coming online makes waiting conversations flow to the agent; leaving online withdraws the
/// agent's pending offers (assigned conversations stay).
#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}/presence",
    tag = AGENTS,
    params(("agent_id" = String, Path, description = "The agent (`agt_…`)")),
    request_body = SetPresence,
    responses(
        (status = 200, description = "The agent with the new presence", body = Agent),
    ),
    security(("api_key" = []))
)]
pub async fn set_presence(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    Json(body): Json<SetPresence>,
) -> Result<axum::Json<Agent>, Problem> {
    let request = pb::SetPresenceRequest {
        agent_id,
        presence: body.presence.as_str().to_owned(),
    };
    let agent = state
        .routing
        .clone()
        .set_presence(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(agent.into()))
}

/// An agent's conversations
///
/// The conversations offered to the agent and assigned to them, each with its handoff context:
/// why it came to a human, the latest messages, and what the customer's last message said.
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}/conversations",
    tag = WORKSPACE,
    params(("agent_id" = String, Path, description = "The agent (`agt_…`)")),
    responses(
        (status = 200, description = "Offers and assignments", body = AgentConversationList),
    ),
    security(("api_key" = []))
)]
pub async fn list_agent_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> Result<axum::Json<AgentConversationList>, Problem> {
    let list = state
        .routing
        .clone()
        .list_agent_conversations(caller.request(pb::ListAgentConversationsRequest { agent_id }))
        .await?
        .into_inner();
    Ok(axum::Json(AgentConversationList {
        conversations: list.conversations.into_iter().map(AgentConversation::from).collect(),
    }))
}

/// Accept an offer
///
/// The conversation is assigned to the agent.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/offers/{conversation_id}/accept",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent (`agt_…`)"),
        ("conversation_id" = String, Path, description = "The conversation offered (`conv_…`)"),
    ),
    responses(
        (status = 200, description = "The conversation, now assigned to the agent", body = AgentConversation),
        (status = 409, description = "The conversation is not offered to this agent, or the offer expired (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn accept_offer(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
) -> Result<axum::Json<AgentConversation>, Problem> {
    let conversation = state
        .routing
        .clone()
        .accept_offer(caller.request(pb::OfferRequest {
            agent_id,
            conversation_id,
        }))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// Reject an offer
///
/// The conversation waits at its place again and goes to the next agent.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/offers/{conversation_id}/reject",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent (`agt_…`)"),
        ("conversation_id" = String, Path, description = "The conversation offered (`conv_…`)"),
    ),
    responses(
        (status = 200, description = "Where the conversation stands now", body = RoutingStatus),
        (status = 409, description = "The conversation is not offered to this agent (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn reject_offer(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
) -> Result<axum::Json<RoutingStatus>, Problem> {
    let status = state
        .routing
        .clone()
        .reject_offer(caller.request(pb::OfferRequest {
            agent_id,
            conversation_id,
        }))
        .await?
        .into_inner();
    Ok(axum::Json(status.into()))
}

/// Reply to the customer
///
/// Posts the agent's message to a conversation assigned to them.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/conversations/{conversation_id}/reply",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent (`agt_…`)"),
        ("conversation_id" = String, Path, description = "A conversation assigned to the agent (`conv_…`)"),
    ),
    request_body = Reply,
    responses(
        (status = 201, description = "The message was stored", body = Message),
        (status = 409, description = "The conversation is not assigned to this agent (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The text is longer than the message limit, 16 KiB by default (`message-too-large`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
    Json(body): Json<Reply>,
) -> Result<Response, Problem> {
    let request = pb::ReplyRequest {
        command_id: caller.command_id.clone(),
        agent_id,
        conversation_id,
        text: body.text,
    };
    let message = Message::from(state.routing.clone().reply(caller.request(request)).await?.into_inner());
    Ok((StatusCode::CREATED, axum::Json(message)).into_response())
}

/// Add an internal note
///
/// A note for the agents on a conversation; the customer never sees it.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/conversations/{conversation_id}/notes",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent writing it (`agt_…`)"),
        ("conversation_id" = String, Path, description = "The conversation (`conv_…`)"),
    ),
    request_body = AddNote,
    responses(
        (status = 201, description = "The note was stored", body = Note),
    ),
    security(("api_key" = []))
)]
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
    Json(body): Json<AddNote>,
) -> Result<Response, Problem> {
    let request = pb::AddNoteRequest {
        command_id: caller.command_id.clone(),
        agent_id,
        conversation_id,
        text: body.text,
    };
    let note = Note::from(
        state
            .routing
            .clone()
            .add_note(caller.request(request))
            .await?
            .into_inner(),
    );
    Ok((StatusCode::CREATED, axum::Json(note)).into_response())
}

/// Transfer a conversation
///
/// Moves a conversation the agent has to a queue (with the skills needed there), to another agent
/// (offered to them directly), or back to the bot. Give exactly one of `queue`, `agent_id` or
/// `bot: true`.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/conversations/{conversation_id}/transfer",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent transferring (`agt_…`)"),
        ("conversation_id" = String, Path, description = "The conversation (`conv_…`)"),
    ),
    request_body = Transfer,
    responses(
        (status = 200, description = "Where the conversation stands now", body = RoutingStatus),
        (status = 409, description = "The conversation is not with this agent, or the agent transferred to cannot take it (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
    Json(body): Json<Transfer>,
) -> Result<axum::Json<RoutingStatus>, Problem> {
    let request = body.into_proto(agent_id, conversation_id)?;
    let status = state
        .routing
        .clone()
        .transfer(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(status.into()))
}

/// Resolve a conversation
///
/// Resolves a conversation assigned to the agent and frees their capacity; the customer may then
/// rate it.
#[utoipa::path(
    post,
    path = "/v1/agents/{agent_id}/conversations/{conversation_id}/resolve",
    tag = WORKSPACE,
    params(
        ("agent_id" = String, Path, description = "The agent (`agt_…`)"),
        ("conversation_id" = String, Path, description = "A conversation assigned to the agent (`conv_…`)"),
    ),
    responses(
        (status = 200, description = "The resolved conversation", body = Conversation),
        (status = 409, description = "The conversation is not assigned to this agent (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, conversation_id)): Path<(String, String)>,
) -> Result<axum::Json<Conversation>, Problem> {
    let conversation = state
        .routing
        .clone()
        .resolve(caller.request(pb::ResolveRequest {
            agent_id,
            conversation_id,
        }))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// List a conversation's notes
///
/// The agents' internal notes on a conversation, oldest first.
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}/notes",
    tag = WORKSPACE,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    responses(
        (status = 200, description = "The notes", body = NoteList),
    ),
    security(("api_key" = []))
)]
pub async fn list_notes(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
) -> Result<axum::Json<NoteList>, Problem> {
    let notes = state
        .routing
        .clone()
        .list_notes(caller.request(pb::ListNotesRequest { conversation_id }))
        .await?
        .into_inner();
    Ok(axum::Json(NoteList {
        notes: notes.notes.into_iter().map(Note::from).collect(),
    }))
}
