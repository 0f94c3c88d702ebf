//! `/v1/conversations`: conversations, their messages and ratings.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use yy_proto::conversation::v1 as pb;

use crate::AppState;
use crate::problem::{Problem, ProblemKind};
use crate::rest::caller::Caller;
use crate::rest::json::Json;
use crate::rest::model::{
    Conversation, ConversationPage, Message, MessagePage, OpenConversation, PostMessage, SubmitCsat, UpdateConversation,
};
use crate::rest::query::{ConversationFilter, Paging, QueryPairs};

const TAG: &str = "conversations";
const MESSAGES: &str = "messages";

/// Open a conversation
///
/// Opens a conversation with an existing contact on a channel. It starts with the bot.
#[utoipa::path(
    post,
    path = "/v1/conversations",
    tag = TAG,
    request_body = OpenConversation,
    responses(
        (status = 201, description = "The conversation was opened", body = Conversation,
            headers(("location" = String, description = "`/v1/conversations/{conversation_id}`"))),
        (status = 404, description = "The contact does not exist in the caller's tenant (`not-found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn open_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OpenConversation>,
) -> Result<Response, Problem> {
    let request = pb::OpenConversationRequest {
        command_id: caller.command_id.clone(),
        contact_id: body.contact_id,
        channel: body.channel,
        subject: body.subject.unwrap_or_default(),
        priority: body.priority.map_or(pb::Priority::Unspecified, |p| p.to_proto()) as i32,
        tags: body.tags.unwrap_or_default(),
        attributes: body.attributes.unwrap_or_default().into_iter().collect(),
    };
    let conversation = Conversation::from(
        state
            .conversations
            .clone()
            .open_conversation(caller.request(request))
            .await?
            .into_inner(),
    );
    let location = format!("/v1/conversations/{}", conversation.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(conversation),
    )
        .into_response())
}

/// List conversations
///
/// The tenant's conversations, newest first, filtered and paged.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = TAG,
    params(ConversationFilter, Paging),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationPage),
    ),
    security(("api_key" = []))
)]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<axum::Json<ConversationPage>, Problem> {
    let (filter, paging) = ConversationFilter::parse(&query)?;
    let request = pb::ListConversationsRequest {
        statuses: filter.status.iter().map(|s| s.to_proto() as i32).collect(),
        channel: filter.channel.unwrap_or_default(),
        tag: filter.tag.unwrap_or_default(),
        priority: filter.priority.map_or(pb::Priority::Unspecified, |p| p.to_proto()) as i32,
        contact_id: filter.contact_id.unwrap_or_default(),
        page_size: paging.size(),
        page_token: paging.token(),
    };
    let page = state
        .conversations
        .clone()
        .list_conversations(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(page.into()))
}

/// Get a conversation
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    responses(
        (status = 200, description = "The conversation", body = Conversation),
    ),
    security(("api_key" = []))
)]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
) -> Result<axum::Json<Conversation>, Problem> {
    let conversation = state
        .conversations
        .clone()
        .get_conversation(caller.request(pb::GetConversationRequest { conversation_id }))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// Change a conversation
///
/// Changes its status, assignee, priority, tags or attributes; only the fields given change.
/// Status `assigned` needs `agent_id`.
#[utoipa::path(
    patch,
    path = "/v1/conversations/{conversation_id}",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    request_body = UpdateConversation,
    responses(
        (status = 200, description = "The conversation after the change", body = Conversation),
        (status = 409, description = "The conversation's status does not allow the change (`invalid-state`), or concurrent changes kept conflicting (`conflict`; retry)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(body): Json<UpdateConversation>,
) -> Result<axum::Json<Conversation>, Problem> {
    let request = pb::UpdateConversationRequest {
        command_id: caller.command_id.clone(),
        conversation_id,
        status: body
            .status
            .map_or(pb::ConversationStatus::Unspecified, |s| s.to_proto()) as i32,
        agent_id: body.agent_id.unwrap_or_default(),
        priority: body.priority.map_or(pb::Priority::Unspecified, |p| p.to_proto()) as i32,
        add_tags: body.add_tags.unwrap_or_default(),
        remove_tags: body.remove_tags.unwrap_or_default(),
        set_attributes: body.set_attributes.unwrap_or_default().into_iter().collect(),
        remove_attributes: body.remove_attributes.unwrap_or_default(),
    };
    let conversation = state
        .conversations
        .clone()
        .update_conversation(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// Resolve a conversation
///
/// Marks it resolved; the customer may then rate it. Resolving a resolved conversation changes
/// nothing.
#[utoipa::path(
    post,
    path = "/v1/conversations/{conversation_id}/resolve",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    responses(
        (status = 200, description = "The resolved conversation", body = Conversation),
        (status = 409, description = "The conversation's status does not allow it (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn resolve_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
) -> Result<axum::Json<Conversation>, Problem> {
    let request = pb::ConversationCommand {
        command_id: caller.command_id.clone(),
        conversation_id,
    };
    let conversation = state
        .conversations
        .clone()
        .resolve_conversation(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// Reopen a conversation
///
/// Reopens a resolved or closed conversation; it goes back to the bot.
#[utoipa::path(
    post,
    path = "/v1/conversations/{conversation_id}/reopen",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    responses(
        (status = 200, description = "The reopened conversation", body = Conversation),
        (status = 409, description = "The conversation is open (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn reopen_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
) -> Result<axum::Json<Conversation>, Problem> {
    let request = pb::ConversationCommand {
        command_id: caller.command_id.clone(),
        conversation_id,
    };
    let conversation = state
        .conversations
        .clone()
        .reopen_conversation(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}

/// Post a message
///
/// Adds a message at the end of the conversation; messages get consecutive positions from 1.
/// A customer writing to a resolved conversation reopens it.
#[utoipa::path(
    post,
    path = "/v1/conversations/{conversation_id}/messages",
    tag = MESSAGES,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    request_body = PostMessage,
    responses(
        (status = 201, description = "The message was stored", body = Message),
        (status = 413, description = "The text is longer than the message limit, 16 KiB by default (`message-too-large`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The conversation is closed (`invalid-state`), or concurrent changes kept conflicting (`conflict`; retry)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(body): Json<PostMessage>,
) -> Result<Response, Problem> {
    let request = pb::PostMessageRequest {
        command_id: caller.command_id.clone(),
        conversation_id,
        role: body.role_name().to_owned(),
        text: body.text.unwrap_or_default(),
        content: body.content.map(|c| c.into_proto()),
        author_id: body.author_id.unwrap_or_default(),
    };
    let message = Message::from(
        state
            .conversations
            .clone()
            .post_message(caller.request(request))
            .await?
            .into_inner(),
    );
    Ok((StatusCode::CREATED, axum::Json(message)).into_response())
}

/// List messages
///
/// The conversation's messages, oldest first (by position), paged.
#[utoipa::path(
    get,
    path = "/v1/conversations/{conversation_id}/messages",
    tag = MESSAGES,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)"), Paging),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
    ),
    security(("api_key" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<MessagePage>, Problem> {
    let paging = Paging::parse(&query)?;
    let request = pb::ListMessagesRequest {
        conversation_id,
        page_size: paging.size(),
        page_token: paging.token(),
    };
    let page = state
        .conversations
        .clone()
        .list_messages(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(page.into()))
}

/// Rate a conversation
///
/// Records the customer's satisfaction rating of a resolved (or closed) conversation, once.
#[utoipa::path(
    post,
    path = "/v1/conversations/{conversation_id}/csat",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    request_body = SubmitCsat,
    responses(
        (status = 200, description = "The conversation with its rating", body = Conversation),
        (status = 409, description = "The conversation is not resolved or closed, or was rated already (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn submit_csat(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(body): Json<SubmitCsat>,
) -> Result<axum::Json<Conversation>, Problem> {
    if !(1..=5).contains(&body.score) {
        return Err(Problem::new(
            ProblemKind::ValidationFailed,
            format!("score must be from 1 to 5, got {}", body.score),
        ));
    }
    let request = pb::SubmitCsatRequest {
        command_id: caller.command_id.clone(),
        conversation_id,
        score: body.score,
        comment: body.comment.unwrap_or_default(),
    };
    let conversation = state
        .conversations
        .clone()
        .submit_csat(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(conversation.into()))
}
