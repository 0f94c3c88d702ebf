//! `/v1/tickets`, `/v1/connectors`, `/v1/sla-policies`, a contact's CRM profile, and the
//! endpoint external ticket systems POST their signed webhooks to. The ticket-sync service does
//! the work; these handlers translate.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json as AxumJson};
use tonic::metadata::MetadataValue;
use yy_proto::ticket::v1 as pb;

use crate::AppState;
use crate::problem::{Problem, ProblemKind};
use crate::rest::caller::Caller;
use crate::rest::json::{Json, OptionalJson};
use crate::rest::layers::{REQUEST_ID, RequestId};
use crate::rest::model::non_empty;
use crate::rest::query::{QueryPairs, TicketFilter};
use crate::rest::tickets_model::{
    AddComment, ChangeStatus, Comment, Connector, ConnectorHealth, ConnectorList, ConnectorSettings, ContactProfile,
    CreateTicket, CreateTicketFromConversation, InboundUpdate, KbFeedSyncResult, LinkConversation, LookupProfile,
    SlaPolicies, Ticket, TicketHistory, TicketPage, UpdateTicket,
};

const TAG: &str = "tickets";
const CONNECTORS: &str = "connectors";
const INBOUND: &str = "inbound webhooks";

/// The header an external ticket system signs its webhooks in: `sha256=<hex>` (or the hex
/// alone), the HMAC-SHA256 of the raw body under the connector's inbound secret.
pub const SIGNATURE_HEADER: &str = "x-signature";

/// The largest inbound webhook body: what the ticket-sync service reads. A larger one is
/// refused here, before anything reaches it.
pub const MAX_INBOUND_BODY_BYTES: usize = 1 << 20;

fn location(ticket_id: &str) -> String {
    format!("/v1/tickets/{ticket_id}")
}

async fn create(state: &AppState, caller: &Caller, body: CreateTicket) -> Result<Response, Problem> {
    let ticket = state
        .tickets
        .clone()
        .create_ticket(caller.request(body.into_proto(caller.command_id.clone())))
        .await?
        .into_inner();
    let ticket = Ticket::from(ticket);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location(&ticket.id))],
        AxumJson(ticket),
    )
        .into_response())
}

/// Create a ticket
///
/// Creates a ticket, on its own or from a conversation (`conversation_id`), and sends it to
/// every enabled outbound ticket-system connector. With an `Idempotency-Key`, a retry names the
/// same ticket.
#[utoipa::path(
    post,
    path = "/v1/tickets",
    tag = TAG,
    request_body = CreateTicket,
    responses(
        (status = 201, description = "The ticket was created", body = Ticket,
            headers(("location" = String, description = "`/v1/tickets/{ticket_id}`"))),
        (status = 404, description = "The conversation does not exist in the caller's tenant (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid (`validation-failed`); `detail` names it",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/validation-failed",
                "title": "The request is not valid",
                "status": 422,
                "detail": "subject: required"
            })),
    ),
    security(("api_key" = []))
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTicket>,
) -> Result<Response, Problem> {
    create(&state, &caller, body).await
}

/// Create a ticket from a conversation
///
/// Creates a ticket linked to the conversation, for its contact (name and email from the
/// contact) unless a requester is given.
#[utoipa::path(
    post,
    path = "/v1/conversations/{conversation_id}/tickets",
    tag = TAG,
    params(("conversation_id" = String, Path, description = "The conversation (`conv_…`)")),
    request_body = CreateTicketFromConversation,
    responses(
        (status = 201, description = "The ticket was created", body = Ticket,
            headers(("location" = String, description = "`/v1/tickets/{ticket_id}`"))),
    ),
    security(("api_key" = []))
)]
pub async fn create_from_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(conversation_id): Path<String>,
    Json(body): Json<CreateTicketFromConversation>,
) -> Result<Response, Problem> {
    let mut body = CreateTicket::from(body);
    body.conversation_id = Some(conversation_id);
    create(&state, &caller, body).await
}

/// List tickets
///
/// The tenant's tickets, newest first, optionally only one status, conversation or contact.
#[utoipa::path(
    get,
    path = "/v1/tickets",
    tag = TAG,
    params(TicketFilter, crate::rest::query::Paging),
    responses(
        (status = 200, description = "A page of tickets", body = TicketPage),
    ),
    security(("api_key" = []))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<AxumJson<TicketPage>, Problem> {
    let (filter, paging) = TicketFilter::parse(&query)?;
    let request = pb::ListTicketsRequest {
        status: filter.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        conversation_id: filter.conversation_id.unwrap_or_default(),
        contact_id: filter.contact_id.unwrap_or_default(),
        page_size: paging.size(),
        page_token: paging.token(),
    };
    let page = state
        .tickets
        .clone()
        .list_tickets(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(TicketPage {
        tickets: page.tickets.into_iter().map(Ticket::from).collect(),
        next_page_token: non_empty(page.next_page_token),
    }))
}

/// Get a ticket
///
/// The ticket with its comments, linked conversations and its state in each external system.
#[utoipa::path(
    get,
    path = "/v1/tickets/{ticket_id}",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
    ),
    security(("api_key" = []))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
) -> Result<AxumJson<Ticket>, Problem> {
    let ticket = state
        .tickets
        .clone()
        .get_ticket(caller.request(pb::GetTicketRequest { ticket_id }))
        .await?
        .into_inner();
    Ok(AxumJson(ticket.into()))
}

async fn update(
    state: &AppState,
    caller: &Caller,
    request: pb::UpdateTicketRequest,
) -> Result<AxumJson<Ticket>, Problem> {
    let ticket = state
        .tickets
        .clone()
        .update_ticket(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(ticket.into()))
}

/// Change a ticket
///
/// Changes the fields given; unchanged values record nothing. Changes are sent to the tenant's
/// outbound ticket systems.
#[utoipa::path(
    patch,
    path = "/v1/tickets/{ticket_id}",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    request_body = UpdateTicket,
    responses(
        (status = 200, description = "The ticket as it is now", body = Ticket),
        (status = 409, description = "The status cannot change to the one asked from the current one, or the ticket is closed (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
    Json(body): Json<UpdateTicket>,
) -> Result<AxumJson<Ticket>, Problem> {
    update(&state, &caller, body.into_proto(ticket_id)).await
}

/// Change a ticket's status
///
/// Moves the ticket to another status: `new` → `open`, `pending`, `solved`; `open` ⇄ `pending`;
/// either → `solved`; `solved` → `open` (reopened) or `closed`. With an `Idempotency-Key`, a
/// retry is carried out once.
#[utoipa::path(
    post,
    path = "/v1/tickets/{ticket_id}/status",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    request_body = ChangeStatus,
    responses(
        (status = 200, description = "The ticket as it is now", body = Ticket),
        (status = 409, description = "The current status does not allow it (`invalid-state`); `detail` names the statuses allowed",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/invalid-state",
                "title": "The resource's state does not allow this",
                "status": 409,
                "detail": "status: closed may not become open"
            })),
    ),
    security(("api_key" = []))
)]
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
    Json(body): Json<ChangeStatus>,
) -> Result<AxumJson<Ticket>, Problem> {
    let mut request = UpdateTicket {
        status: Some(body.status),
        actor: body.actor,
        ..UpdateTicket::default()
    }
    .into_proto(ticket_id);
    request.command_id = caller.command_id.clone();
    update(&state, &caller, request).await
}

/// Comment on a ticket
///
/// Adds a public comment or, with `public: false`, an internal note. Public comments are sent to
/// ticket systems with a comment template.
#[utoipa::path(
    post,
    path = "/v1/tickets/{ticket_id}/comments",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    request_body = AddComment,
    responses(
        (status = 201, description = "The comment", body = Comment),
    ),
    security(("api_key" = []))
)]
pub async fn add_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
    Json(body): Json<AddComment>,
) -> Result<Response, Problem> {
    let comment = state
        .tickets
        .clone()
        .add_comment(caller.request(body.into_proto(ticket_id, caller.command_id.clone())))
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, AxumJson(Comment::from(comment))).into_response())
}

/// Link a conversation
///
/// Links another conversation of the tenant to the ticket.
#[utoipa::path(
    post,
    path = "/v1/tickets/{ticket_id}/conversations",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    request_body = LinkConversation,
    responses(
        (status = 200, description = "The ticket with the conversation linked", body = Ticket),
    ),
    security(("api_key" = []))
)]
pub async fn link_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
    Json(body): Json<LinkConversation>,
) -> Result<AxumJson<Ticket>, Problem> {
    let request = pb::LinkConversationRequest {
        command_id: caller.command_id.clone(),
        ticket_id,
        conversation_id: body.conversation_id,
        actor: body.actor.map(|a| pb::Actor {
            kind: a.kind,
            id: a.id.unwrap_or_default(),
        }),
    };
    let ticket = state
        .tickets
        .clone()
        .link_conversation(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(ticket.into()))
}

/// Unlink a conversation
#[utoipa::path(
    delete,
    path = "/v1/tickets/{ticket_id}/conversations/{conversation_id}",
    tag = TAG,
    params(
        ("ticket_id" = String, Path, description = "The ticket (`tkt_…`)"),
        ("conversation_id" = String, Path, description = "The linked conversation (`conv_…`)"),
    ),
    responses(
        (status = 200, description = "The ticket without the conversation", body = Ticket),
    ),
    security(("api_key" = []))
)]
pub async fn unlink_conversation(
    State(state): State<AppState>,
    caller: Caller,
    Path((ticket_id, conversation_id)): Path<(String, String)>,
) -> Result<AxumJson<Ticket>, Problem> {
    let request = pb::LinkConversationRequest {
        command_id: String::new(),
        ticket_id,
        conversation_id,
        actor: None,
    };
    let ticket = state
        .tickets
        .clone()
        .unlink_conversation(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(ticket.into()))
}

/// A ticket's history
///
/// Every change of the ticket from the log, oldest first: its fields, comments and links, what
/// was sent to external systems and what failed, and the changes that came from them (with the
/// connector as `origin`).
#[utoipa::path(
    get,
    path = "/v1/tickets/{ticket_id}/history",
    tag = TAG,
    params(("ticket_id" = String, Path, description = "The ticket (`tkt_…`)")),
    responses(
        (status = 200, description = "The history", body = TicketHistory),
    ),
    security(("api_key" = []))
)]
pub async fn get_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(ticket_id): Path<String>,
) -> Result<AxumJson<TicketHistory>, Problem> {
    let history = state
        .tickets
        .clone()
        .get_ticket_history(caller.request(pb::GetTicketHistoryRequest { ticket_id }))
        .await?
        .into_inner();
    Ok(AxumJson(TicketHistory {
        entries: history.entries.into_iter().map(Into::into).collect(),
    }))
}

/// Get the SLA policies
#[utoipa::path(
    get,
    path = "/v1/sla-policies",
    tag = TAG,
    responses(
        (status = 200, description = "The tenant's SLA policies", body = SlaPolicies),
    ),
    security(("api_key" = []))
)]
pub async fn get_sla_policies(State(state): State<AppState>, caller: Caller) -> Result<AxumJson<SlaPolicies>, Problem> {
    let policies = state
        .tickets
        .clone()
        .get_sla_policies(caller.request(pb::GetSlaPoliciesRequest {}))
        .await?
        .into_inner();
    Ok(AxumJson(SlaPolicies {
        resolution_minutes: policies.resolution_minutes.into_iter().collect(),
    }))
}

/// Replace the SLA policies
///
/// Sets, per priority, the minutes a ticket has until it is due. Tickets created or given a new
/// priority from now on get their due time from it.
#[utoipa::path(
    put,
    path = "/v1/sla-policies",
    tag = TAG,
    request_body = SlaPolicies,
    responses(
        (status = 200, description = "The policies in force", body = SlaPolicies),
    ),
    security(("api_key" = []))
)]
pub async fn put_sla_policies(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SlaPolicies>,
) -> Result<AxumJson<SlaPolicies>, Problem> {
    let request = pb::PutSlaPoliciesRequest {
        resolution_minutes: body.resolution_minutes.into_iter().collect(),
    };
    let policies = state
        .tickets
        .clone()
        .put_sla_policies(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(SlaPolicies {
        resolution_minutes: policies.resolution_minutes.into_iter().collect(),
    }))
}

async fn put_connector(
    state: &AppState,
    caller: &Caller,
    request: pb::PutConnectorRequest,
) -> Result<Connector, Problem> {
    let connector = state
        .tickets
        .clone()
        .put_connector(caller.request(request))
        .await?
        .into_inner();
    Ok(Connector::from_proto(connector, &caller.principal.tenant_id))
}

/// Add a connector
///
/// Connects the tenant's external ticket system or CRM. Secrets are sealed before they are
/// stored and never shown again. With an `Idempotency-Key`, a retry names the same connector.
#[utoipa::path(
    post,
    path = "/v1/connectors",
    tag = CONNECTORS,
    request_body = ConnectorSettings,
    responses(
        (status = 201, description = "The connector, without its secrets", body = Connector,
            headers(("location" = String, description = "`/v1/connectors/{connector_id}`"))),
        (status = 422, description = "A setting is not valid (`validation-failed`); `detail` names it",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/validation-failed",
                "title": "The request is not valid",
                "status": 422,
                "detail": "ticket_system.create.path: unknown variable \"tikcet.id\""
            })),
        (status = 409, description = "The connector carries a secret and the ticket-sync service has no `ticket_sync.secret_key` to seal it with (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_connector(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ConnectorSettings>,
) -> Result<Response, Problem> {
    let connector = put_connector(
        &state,
        &caller,
        body.into_proto(String::new(), caller.command_id.clone()),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/connectors/{}", connector.id))],
        AxumJson(connector),
    )
        .into_response())
}

/// List connectors
#[utoipa::path(
    get,
    path = "/v1/connectors",
    tag = CONNECTORS,
    responses(
        (status = 200, description = "The tenant's connectors, without their secrets", body = ConnectorList),
    ),
    security(("api_key" = []))
)]
pub async fn list_connectors(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AxumJson<ConnectorList>, Problem> {
    let list = state
        .tickets
        .clone()
        .list_connectors(caller.request(pb::ListConnectorsRequest {}))
        .await?
        .into_inner();
    let tenant_id = &caller.principal.tenant_id;
    Ok(AxumJson(ConnectorList {
        connectors: list
            .connectors
            .into_iter()
            .map(|c| Connector::from_proto(c, tenant_id))
            .collect(),
    }))
}

/// Get a connector
///
/// Its configuration without secrets: the authentication scheme, the user name or header, and
/// whether an inbound secret is set.
#[utoipa::path(
    get,
    path = "/v1/connectors/{connector_id}",
    tag = CONNECTORS,
    params(("connector_id" = String, Path, description = "The connector (`cnx_…`)")),
    responses(
        (status = 200, description = "The connector", body = Connector),
    ),
    security(("api_key" = []))
)]
pub async fn get_connector(
    State(state): State<AppState>,
    caller: Caller,
    Path(connector_id): Path<String>,
) -> Result<AxumJson<Connector>, Problem> {
    let connector = state
        .tickets
        .clone()
        .get_connector(caller.request(pb::GetConnectorRequest { connector_id }))
        .await?
        .into_inner();
    Ok(AxumJson(Connector::from_proto(connector, &caller.principal.tenant_id)))
}

/// Reconfigure a connector
///
/// Replaces the whole configuration (its kind cannot change). A secret left out or empty keeps
/// the stored one when the authentication scheme is unchanged.
#[utoipa::path(
    put,
    path = "/v1/connectors/{connector_id}",
    tag = CONNECTORS,
    params(("connector_id" = String, Path, description = "The connector (`cnx_…`)")),
    request_body = ConnectorSettings,
    responses(
        (status = 200, description = "The connector as it is now, without its secrets", body = Connector),
    ),
    security(("api_key" = []))
)]
pub async fn reconfigure_connector(
    State(state): State<AppState>,
    caller: Caller,
    Path(connector_id): Path<String>,
    Json(body): Json<ConnectorSettings>,
) -> Result<AxumJson<Connector>, Problem> {
    let request = body.into_proto(connector_id, String::new());
    Ok(AxumJson(put_connector(&state, &caller, request).await?))
}

/// Delete a connector
///
/// Its pending changes are abandoned (recorded in each ticket's history).
#[utoipa::path(
    delete,
    path = "/v1/connectors/{connector_id}",
    tag = CONNECTORS,
    params(("connector_id" = String, Path, description = "The connector (`cnx_…`)")),
    responses(
        (status = 204, description = "The connector was deleted"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_connector(
    State(state): State<AppState>,
    caller: Caller,
    Path(connector_id): Path<String>,
) -> Result<StatusCode, Problem> {
    state
        .tickets
        .clone()
        .delete_connector(caller.request(pb::DeleteConnectorRequest { connector_id }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connector's health
///
/// Calls that succeeded and failed since the ticket-sync service started, the latest errors,
/// the changes waiting to be sent (from the log), CRM cache hits and refused webhooks.
#[utoipa::path(
    get,
    path = "/v1/connectors/{connector_id}/health",
    tag = CONNECTORS,
    params(("connector_id" = String, Path, description = "The connector (`cnx_…`)")),
    responses(
        (status = 200, description = "Its health", body = ConnectorHealth),
    ),
    security(("api_key" = []))
)]
pub async fn get_connector_health(
    State(state): State<AppState>,
    caller: Caller,
    Path(connector_id): Path<String>,
) -> Result<AxumJson<ConnectorHealth>, Problem> {
    let health = state
        .tickets
        .clone()
        .get_connector_health(caller.request(pb::GetConnectorHealthRequest { connector_id }))
        .await?
        .into_inner();
    Ok(AxumJson(health.into()))
}

/// Push a knowledge-base feed
///
/// Imports the body, a JSON array of knowledge-base entries (`id`, `title`, `questions`,
/// `answer`, `format`, `tags`, `locale`, `enabled`), through a `kb_feed` connector as a pull
/// would: new and changed entries are written, entries the feed had before and no longer has
/// are disabled. A body that is not such an array, or holds one invalid entry, is refused whole
/// and nothing changes.
#[utoipa::path(
    post,
    path = "/v1/connectors/{connector_id}/kb-feed",
    tag = CONNECTORS,
    params(("connector_id" = String, Path, description = "The `kb_feed` connector (`cnx_…`)")),
    request_body(content = Vec<Object>, description = "The feed: a JSON array of knowledge-base entries", content_type = "application/json"),
    responses(
        (status = 200, description = "What the import did", body = KbFeedSyncResult),
        (status = 409, description = "The connector is disabled (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn push_kb_feed(
    State(state): State<AppState>,
    caller: Caller,
    Path(connector_id): Path<String>,
    body: Bytes,
) -> Result<AxumJson<KbFeedSyncResult>, Problem> {
    // The feed is passed on as it came: ticket-sync reads and validates it whole.
    let document = String::from_utf8(body.to_vec())
        .map_err(|_| Problem::new(ProblemKind::ValidationFailed, "body: the feed must be UTF-8 JSON"))?;
    let result = state
        .tickets
        .clone()
        .push_kb_feed(caller.request(pb::PushKbFeedRequest { connector_id, document }))
        .await?
        .into_inner();
    Ok(AxumJson(result.into()))
}

/// Look a contact up in the CRM
///
/// Fetches the contact's profile from the tenant's CRM connector (or its cache) and writes the
/// mapped attributes to the contact, where routing rules and flows see them.
#[utoipa::path(
    post,
    path = "/v1/contacts/{contact_id}/crm-profile",
    tag = CONNECTORS,
    params(("contact_id" = String, Path, description = "The contact (`ctc_…`)")),
    request_body(content = Option<LookupProfile>, description = "Optional: `{\"refresh\": true}` asks the CRM even when the cache has a fresh profile"),
    responses(
        (status = 200, description = "The profile", body = ContactProfile),
        (status = 409, description = "The tenant has no enabled CRM connector (`invalid-state`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The CRM could not be reached or failed (`unavailable`); `detail` says how", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn lookup_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(contact_id): Path<String>,
    OptionalJson(body): OptionalJson<LookupProfile>,
) -> Result<AxumJson<ContactProfile>, Problem> {
    let request = pb::LookupContactProfileRequest {
        contact_id,
        refresh: body.unwrap_or_default().refresh,
    };
    let profile = state
        .tickets
        .clone()
        .lookup_contact_profile(caller.request(request))
        .await?
        .into_inner();
    Ok(AxumJson(profile.into()))
}

/// The one answer to every webhook that is not accepted as signed, so that it tells nothing
/// about whether the tenant or the connector exists, or is enabled.
fn refused() -> Problem {
    Problem::new(
        ProblemKind::Unauthorized,
        "the signature does not verify for this connector",
    )
}

/// Receive an external ticket system's webhook
///
/// Where the tenant's ticket system POSTs its webhooks (the connector's `inbound_path`). No API
/// key: the request is authenticated by the `X-Signature` header alone, `sha256=<hex>` of the
/// HMAC-SHA256 of the raw body under the connector's `inbound_secret`. The body is passed on
/// byte for byte and read with the connector's `ticket_system.inbound` pointers; the change is
/// recorded with the connector as its origin and never sent back to it. An unknown tenant or
/// connector, a disabled one and a bad signature all get the same 401. A webhook delivered
/// twice changes the ticket once (`changed: false` the second time).
#[utoipa::path(
    post,
    path = "/v1/inbound/tickets/{tenant_id}/{connector_id}",
    tag = INBOUND,
    params(
        ("tenant_id" = String, Path, description = "The tenant (`ten_…`)"),
        ("connector_id" = String, Path, description = "The ticket-system connector (`cnx_…`)"),
        ("X-Signature" = String, Header, description = "`sha256=<hex>` (or the hex alone): the HMAC-SHA256 of the raw body under the connector's inbound secret",
            example = "sha256=5d1f0c9b3b6a0e6e2f5a0f2d7d7b8c1f4e0a9d2c6b3e8f1a7c4d9e2b6f0a3c8d"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "The external system's own JSON, at most 1 MiB, passed on untouched",
        example = json!({"ticket": {"id": "48213", "status": "RESOLVED"}, "comment": {"body": "Refund issued."}})),
    responses(
        (status = 200, description = "The update was applied, or changed nothing", body = InboundUpdate),
        (status = 401, description = "The signature does not verify, or there is no such enabled connector accepting webhooks (`unauthorized`); the same answer for each. ",
            body = Problem, content_type = "application/problem+json",
            example = json!({
                "type": "/problems/unauthorized",
                "title": "Missing or invalid credentials",
                "status": 401,
                "detail": "the signature does not verify for this connector"
            })),
        (status = 422, description = "Signed, but the body cannot be read with the connector's mapping (`validation-failed`): not JSON, no external ticket id, or a status that maps to none here", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Signed, but about a ticket this connector never received (`not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Signed, but a status change the ticket's status forbids (`invalid-state`), or concurrent changes kept conflicting (`conflict`; retrying is safe)", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
pub async fn receive_inbound(
    State(state): State<AppState>,
    Path((tenant_id, connector_id)): Path<(String, String)>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<AxumJson<InboundUpdate>, Problem> {
    if body.len() > MAX_INBOUND_BODY_BYTES {
        return Err(Problem::new(
            ProblemKind::RequestTooLarge,
            format!("the request body must be at most {MAX_INBOUND_BODY_BYTES} bytes"),
        ));
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.trim().is_empty());
    // The tenant comes from the URL, not from a key: it must be a token the log accepts before it
    // goes into metadata and subjects.
    let (Some(signature), Ok(())) = (signature, yy_eventlog::validate_token("tenant", &tenant_id)) else {
        return Err(refused());
    };
    let message = pb::ReceiveExternalUpdateRequest {
        connector_id: connector_id.clone(),
        body: body.to_vec(),
        signature: signature.to_owned(),
    };
    let mut request = crate::upstream::for_tenant(&tenant_id, message);
    if let Some(value) = request_id.and_then(|Extension(id)| MetadataValue::try_from(id.0.as_str()).ok()) {
        request.metadata_mut().insert(REQUEST_ID, value);
    }
    match state.tickets.clone().receive_external_update(request).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            Ok(AxumJson(InboundUpdate {
                ticket_id: answer.ticket_id,
                changed: answer.changed,
            }))
        }
        Err(status) => {
            let problem = Problem::from(status.clone());
            match problem.kind() {
                // Ticket-sync answers every refusal before the signature verifies (no such
                // connector, a disabled one, a bad signature) as `invalid-signature`; the sender
                // gets one uniform answer. Refusals of a signed update are the sender's to know.
                Some(ProblemKind::Unauthorized) => {
                    tracing::info!(
                        tenant_id,
                        connector_id,
                        reason = status.message(),
                        "an inbound ticket webhook was refused"
                    );
                    Err(refused())
                }
                _ => Err(problem),
            }
        }
    }
}
