//! Contact profiles from the tenant's CRM. When a conversation opens (and on demand) the contact's
//! profile is fetched with the connector's lookup template, mapped to contact attributes and
//! written to the contact through the conversation service, which owns contacts; routing rules
//! and flows then see the attributes. Profiles are cached in a KV bucket with a TTL, so a
//! contact's next conversations within it do not reach the CRM.
//!
//! A CRM that fails never holds up a conversation: the lookup runs beside it, and the contact
//! keeps the attributes it has (the last profile written) or none.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tonic::Status;
use tonic::transport::Channel;
use yy_eventlog::{Delivery, KvBucket, KvError, Outcome, Payload};
use yy_proto::conversation::v1 as conv;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::ticket::v1 as pb;
use yy_runtime::for_tenant;

use crate::connectors::{CallError, Gateway, text_at};
use crate::domain::timestamp;
use crate::errors::{invalid, invalid_state, not_found, unavailable};
use crate::health::Health;
use crate::state::{Connector, Store, now_ms};

/// Conversations opened longer ago than this are not looked up when the consumer first reads
/// them (a new deployment reading old history): the conversation has moved on.
const STALE_OPEN_MS: i64 = 15 * 60 * 1000;
/// Resolutions older than this get no summary pushed.
const STALE_RESOLVED_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedProfile {
    attributes: BTreeMap<String, String>,
    name: Option<String>,
    fetched_at_ms: i64,
}

/// CRM lookups. Cheap to clone.
#[derive(Clone)]
pub struct Crm {
    store: Store,
    gateway: Gateway,
    health: Health,
    cache: KvBucket,
    conversations: ConversationServiceClient<Channel>,
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crm").finish_non_exhaustive()
    }
}

/// Why a lookup gave no fresh profile.
#[derive(Debug)]
pub enum LookupError {
    /// Answer the API with this.
    Status(Status),
    /// The CRM failed; already recorded in the connector's health.
    Crm(CallError),
}

impl From<Status> for LookupError {
    fn from(status: Status) -> Self {
        LookupError::Status(status)
    }
}

impl Crm {
    pub fn new(
        store: Store,
        gateway: Gateway,
        health: Health,
        cache: KvBucket,
        conversations: ConversationServiceClient<Channel>,
    ) -> Self {
        Crm {
            store,
            gateway,
            health,
            cache,
            conversations,
        }
    }

    /// Handles one conversation-log commit.
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let record = delivery.record;
        let tenant = record.tenant_id.as_str();
        for event in &record.commit.events {
            let age = now_ms() - event.occurred_at.as_ref().map_or(0, crate::domain::millis);
            let result = match &event.payload {
                Some(Payload::ConversationOpened(opened)) if age < STALE_OPEN_MS => {
                    self.lookup(tenant, &opened.contact_id, false).await.map(|_| ())
                }
                Some(Payload::ConversationStatusChanged(changed))
                    if changed.to == conv::ConversationStatus::Resolved as i32 && age < STALE_RESOLVED_MS =>
                {
                    self.summary(tenant, &record.aggregate_id, &event.event_id).await
                }
                _ => continue,
            };
            match result {
                Ok(()) => {}
                // The CRM is down or refused: the conversation goes on with what the contact has.
                Err(LookupError::Crm(error)) => {
                    tracing::warn!(tenant, error = %error.message, "CRM call failed; the contact keeps its attributes");
                }
                Err(LookupError::Status(status))
                    if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Aborted) =>
                {
                    return Outcome::Retry {
                        after: Duration::from_secs(2),
                        reason: status.message().to_owned(),
                    };
                }
                Err(LookupError::Status(status)) => {
                    tracing::debug!(tenant, %status, "no CRM lookup");
                }
            }
        }
        Outcome::Done
    }

    fn connector(&self, tenant: &str) -> Option<Connector> {
        self.store.read(tenant, |t| t.crm().cloned())
    }

    async fn contact(&self, tenant: &str, contact_id: &str) -> Result<conv::Contact, Status> {
        let request = for_tenant(
            tenant,
            conv::GetContactRequest {
                contact_id: contact_id.to_owned(),
            },
        );
        match self.conversations.clone().get_contact(request).await {
            Ok(contact) => Ok(contact.into_inner()),
            Err(status) if status.code() == tonic::Code::NotFound => Err(not_found("contact", contact_id)),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                Err(invalid("contact_id", status.message()))
            }
            Err(status) => Err(unavailable(format!("the conversation service: {}", status.message()))),
        }
    }

    /// The customer of a conversation, as a ticket's requester: contact id, name and email.
    pub async fn requester_of(&self, tenant: &str, conversation_id: &str) -> Result<(String, String, String), Status> {
        let request = for_tenant(
            tenant,
            conv::GetConversationRequest {
                conversation_id: conversation_id.to_owned(),
            },
        );
        let conversation = match self.conversations.clone().get_conversation(request).await {
            Ok(c) => c.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(not_found("conversation", conversation_id));
            }
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return Err(invalid("conversation_id", status.message()));
            }
            Err(status) => return Err(unavailable(format!("the conversation service: {}", status.message()))),
        };
        let contact = self.contact(tenant, &conversation.contact_id).await?;
        let email = contact
            .identities
            .iter()
            .find(|i| i.channel == "email")
            .map(|i| i.external_id.clone())
            .unwrap_or_default();
        Ok((contact.id, contact.name, email))
    }

    /// The contact's profile: from the cache unless `refresh`, else from the CRM; written to the
    /// contact either way when it differs from what the contact has.
    pub async fn lookup(
        &self,
        tenant: &str,
        contact_id: &str,
        refresh: bool,
    ) -> Result<pb::ContactProfile, LookupError> {
        let connector = self
            .connector(tenant)
            .ok_or_else(|| invalid_state("the tenant has no enabled CRM connector"))?;
        let key = format!("{tenant}.{}.{contact_id}", connector.id);
        let cached = match self.cache.get(&key).await {
            Ok(entry) => entry,
            Err(error) => {
                // A cache that cannot be read is a miss, not a failure.
                tracing::warn!(%error, "the CRM cache cannot be read");
                None
            }
        };
        let cached_profile = cached
            .as_ref()
            .and_then(|e| serde_json::from_slice::<CachedProfile>(&e.value).ok());
        if !refresh && let Some(profile) = &cached_profile {
            self.health.cache_hit(tenant, &connector.id);
            let contact = self.contact(tenant, contact_id).await?;
            self.write(tenant, &contact, profile).await?;
            return Ok(view(contact_id, &connector.id, profile, true));
        }
        let contact = self.contact(tenant, contact_id).await?;
        let settings = connector.config.crm.clone().unwrap_or_default();
        let template = settings.lookup.clone().unwrap_or_default();
        let context = json!({ "contact": contact_json(&contact) });
        let answer = match self.gateway.call(tenant, &connector, &template, &context, None).await {
            Ok(answer) => {
                self.health.succeeded(tenant, &connector.id, "crm", "lookup");
                self.health.crm_lookup(true);
                answer
            }
            Err(error) => {
                self.health.failed(
                    tenant,
                    &connector.id,
                    "crm",
                    "lookup",
                    &error.message,
                    error.http_status,
                );
                self.health.crm_lookup(false);
                return Err(LookupError::Crm(error));
            }
        };
        let profile = CachedProfile {
            attributes: settings
                .attributes
                .iter()
                .filter_map(|(name, pointer)| {
                    text_at(&answer.body, pointer).map(|v| (name.clone(), v.chars().take(1024).collect()))
                })
                .collect(),
            name: text_at(&answer.body, &settings.name_pointer).map(|n| n.chars().take(200).collect()),
            fetched_at_ms: now_ms(),
        };
        let bytes = Bytes::from(serde_json::to_vec(&profile).unwrap_or_default());
        let stored = match &cached {
            Some(entry) => self.cache.update(&key, bytes, entry.revision).await,
            None => self.cache.create(&key, bytes).await,
        };
        match stored {
            Ok(_) | Err(KvError::Conflict { .. }) => {}
            Err(error) => tracing::warn!(%error, "a CRM profile was not cached; the next lookup asks the CRM again"),
        }
        self.write(tenant, &contact, &profile).await?;
        Ok(view(contact_id, &connector.id, &profile, false))
    }

    /// Writes the profile's attributes (and name) that the contact does not have yet.
    async fn write(&self, tenant: &str, contact: &conv::Contact, profile: &CachedProfile) -> Result<(), Status> {
        let attributes: std::collections::HashMap<String, String> = profile
            .attributes
            .iter()
            .filter(|(k, v)| contact.attributes.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let name = profile.name.clone().filter(|n| *n != contact.name).unwrap_or_default();
        if attributes.is_empty() && name.is_empty() {
            return Ok(());
        }
        let Some(identity) = contact.identities.first().cloned() else {
            tracing::warn!(contact = %contact.id, "a contact without identities cannot be updated");
            return Ok(());
        };
        let request = for_tenant(
            tenant,
            conv::UpsertContactRequest {
                command_id: format!("crm-{}-{}", contact.id, profile.fetched_at_ms),
                identity: Some(identity),
                name,
                attributes,
            },
        );
        match self.conversations.clone().upsert_contact(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                // The CRM's data does not fit a contact (too long, too many): log, do not retry.
                tracing::warn!(%status, contact = %contact.id, "the CRM profile was refused by the conversation service");
                Ok(())
            }
            Err(status) => Err(unavailable(format!("the conversation service: {}", status.message()))),
        }
    }

    /// Pushes a resolved conversation's summary to the CRM, when the connector has a summary template.
    async fn summary(&self, tenant: &str, conversation_id: &str, event_id: &str) -> Result<(), LookupError> {
        let Some(connector) = self.connector(tenant) else {
            return Ok(());
        };
        let Some(template) = connector
            .config
            .crm
            .as_ref()
            .and_then(|c| c.summary.clone())
            .filter(|t| !t.method.is_empty())
        else {
            return Ok(());
        };
        let request = for_tenant(
            tenant,
            conv::GetConversationRequest {
                conversation_id: conversation_id.to_owned(),
            },
        );
        let conversation = match self.conversations.clone().get_conversation(request).await {
            Ok(c) => c.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(()),
            Err(status) => return Err(unavailable(status.message()).into()),
        };
        let contact = self.contact(tenant, &conversation.contact_id).await?;
        let context = json!({
            "contact": contact_json(&contact),
            "conversation": {
                "id": conversation.id,
                "channel": conversation.channel,
                "subject": conversation.subject,
                "tags": conversation.tags,
                "attributes": conversation.attributes,
                "agent_id": conversation.agent_id,
                "message_count": conversation.message_count,
                "created_at": conversation.created_at.map(|t| t.to_string()),
                "resolved_at": conversation.updated_at.map(|t| t.to_string()),
            },
        });
        match self
            .gateway
            .call(tenant, &connector, &template, &context, Some(event_id))
            .await
        {
            Ok(_) => {
                self.health.succeeded(tenant, &connector.id, "crm", "summary");
                Ok(())
            }
            Err(error) => {
                self.health.failed(
                    tenant,
                    &connector.id,
                    "crm",
                    "summary",
                    &error.message,
                    error.http_status,
                );
                // Unlike a lookup, a summary is owed: retry, and dead-letter after the limit.
                Err(LookupError::Status(unavailable(error.message)))
            }
        }
    }
}

fn view(contact_id: &str, connector_id: &str, profile: &CachedProfile, cached: bool) -> pb::ContactProfile {
    pb::ContactProfile {
        contact_id: contact_id.to_owned(),
        connector_id: connector_id.to_owned(),
        attributes: profile.attributes.clone().into_iter().collect(),
        name: profile.name.clone().unwrap_or_default(),
        cached,
        fetched_at: Some(timestamp(profile.fetched_at_ms)),
    }
}

/// A contact as templates see it: `identities` maps each channel to the first identity on it.
fn contact_json(contact: &conv::Contact) -> Value {
    let mut identities = serde_json::Map::new();
    for identity in &contact.identities {
        identities
            .entry(identity.channel.clone())
            .or_insert_with(|| Value::String(identity.external_id.clone()));
    }
    json!({
        "id": contact.id,
        "name": contact.name,
        "attributes": contact.attributes,
        "identities": identities,
    })
}
