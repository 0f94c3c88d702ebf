//! `/v1/contacts`: customers and their channel identities.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use yy_proto::conversation::v1 as pb;

use crate::AppState;
use crate::problem::Problem;
use crate::rest::caller::Caller;
use crate::rest::json::Json;
use crate::rest::model::{ChannelIdentity, Contact, ConversationPage, MergeContacts, UpsertContact};
use crate::rest::query::{Paging, QueryPairs};

const TAG: &str = "contacts";

/// Find or create a contact by channel identity
///
/// Finds the contact with this channel identity, creating it when there is none; `name` and
/// `attributes`, when given, are applied either way. Answers 201 with `Location` when the
/// contact was created and 200 when it was found.
#[utoipa::path(
    post,
    path = "/v1/contacts",
    tag = TAG,
    request_body = UpsertContact,
    responses(
        (status = 201, description = "The contact was created", body = Contact,
            headers(("location" = String, description = "`/v1/contacts/{contact_id}`"))),
        (status = 200, description = "A contact with this identity exists; it was updated with what was given", body = Contact),
    ),
    security(("api_key" = []))
)]
pub async fn upsert_contact(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<UpsertContact>,
) -> Result<Response, Problem> {
    let request = pb::UpsertContactRequest {
        command_id: caller.command_id.clone(),
        identity: Some(body.identity.into_proto()),
        name: body.name.unwrap_or_default(),
        attributes: body.attributes.unwrap_or_default().into_iter().collect(),
    };
    let response = state
        .conversations
        .clone()
        .upsert_contact(caller.request(request))
        .await?
        .into_inner();
    let contact = Contact::from(response.contact.unwrap_or_default());
    if response.created {
        let location = format!("/v1/contacts/{}", contact.id);
        Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(contact)).into_response())
    } else {
        Ok(axum::Json(contact).into_response())
    }
}

/// Get a contact
///
/// A contact merged into another answers with the one it was merged into.
#[utoipa::path(
    get,
    path = "/v1/contacts/{contact_id}",
    tag = TAG,
    params(("contact_id" = String, Path, description = "The contact (`ctc_…`)")),
    responses(
        (status = 200, description = "The contact", body = Contact),
    ),
    security(("api_key" = []))
)]
pub async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(contact_id): Path<String>,
) -> Result<axum::Json<Contact>, Problem> {
    let contact = state
        .conversations
        .clone()
        .get_contact(caller.request(pb::GetContactRequest { contact_id }))
        .await?
        .into_inner();
    Ok(axum::Json(contact.into()))
}

/// Link another channel identity to a contact
///
/// Adds another channel identity of the same customer, such as their WhatsApp number to the
/// contact known from the web chat. Its conversations then appear in the contact's history.
/// Linking an identity the contact already has changes nothing; one that belongs to another
/// contact is refused (merge the contacts instead).
#[utoipa::path(
    post,
    path = "/v1/contacts/{contact_id}/identities",
    tag = TAG,
    params(("contact_id" = String, Path, description = "The contact (`ctc_…`)")),
    request_body = ChannelIdentity,
    responses(
        (status = 200, description = "The contact with the identity", body = Contact),
    ),
    security(("api_key" = []))
)]
pub async fn link_identity(
    State(state): State<AppState>,
    caller: Caller,
    Path(contact_id): Path<String>,
    Json(identity): Json<ChannelIdentity>,
) -> Result<axum::Json<Contact>, Problem> {
    let request = pb::LinkIdentityRequest {
        command_id: caller.command_id.clone(),
        contact_id,
        identity: Some(identity.into_proto()),
    };
    let contact = state
        .conversations
        .clone()
        .link_identity(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(contact.into()))
}

/// Merge another contact into this one
///
/// The source contact's identities and conversations move to this contact; the source's id
/// answers with this contact from then on.
#[utoipa::path(
    post,
    path = "/v1/contacts/{contact_id}/merge",
    tag = TAG,
    params(("contact_id" = String, Path, description = "The contact that remains (`ctc_…`)")),
    request_body = MergeContacts,
    responses(
        (status = 200, description = "The contact after the merge", body = Contact),
    ),
    security(("api_key" = []))
)]
pub async fn merge_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Path(contact_id): Path<String>,
    Json(body): Json<MergeContacts>,
) -> Result<axum::Json<Contact>, Problem> {
    let request = pb::MergeContactsRequest {
        command_id: caller.command_id.clone(),
        target_contact_id: contact_id,
        source_contact_id: body.source_contact_id,
    };
    let contact = state
        .conversations
        .clone()
        .merge_contacts(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(contact.into()))
}

/// List a contact's conversations
///
/// Every conversation of the contact across all its channels (and of contacts merged into it),
/// newest first.
#[utoipa::path(
    get,
    path = "/v1/contacts/{contact_id}/conversations",
    tag = TAG,
    params(("contact_id" = String, Path, description = "The contact (`ctc_…`)"), Paging),
    responses(
        (status = 200, description = "A page of conversations", body = ConversationPage),
    ),
    security(("api_key" = []))
)]
pub async fn list_contact_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Path(contact_id): Path<String>,
    query: QueryPairs,
) -> Result<axum::Json<ConversationPage>, Problem> {
    let paging = Paging::parse(&query)?;
    let request = pb::ListContactConversationsRequest {
        contact_id,
        page_size: paging.size(),
        page_token: paging.token(),
    };
    let page = state
        .conversations
        .clone()
        .list_contact_conversations(caller.request(request))
        .await?
        .into_inner();
    Ok(axum::Json(page.into()))
}
