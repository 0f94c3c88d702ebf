//! The ticket API over gRPC (`yy.ticket.v1.TicketService`): commands are decided against the
//! log's state and appended (see `state::Store`); queries read that state.

use aws_lc_rs::digest;
use tonic::{Request, Response, Status};
use yy_eventlog::{LogContext, Payload, validate_token};
use yy_proto::ticket::v1 as pb;
use yy_proto::ticket::v1::ticket_service_server::TicketService;
use yy_runtime::tenant_of;

use crate::connectors::{Gateway, view as connector_view};
use crate::crm::{Crm, LookupError};
use crate::domain::{self, Actor, Changes, Command, NewTicket, PRIORITIES, Requester, Ticket, timestamp};
use crate::errors::{invalid, not_found, rejected, unavailable};
use crate::health::Health;
use crate::kbfeed::KbFeeds;
use crate::outbound::Outbound;
use crate::state::{SETTINGS_AGGREGATE, Store, Tenant, now_ms};

#[derive(Clone)]
pub struct Tickets {
    pub store: Store,
    pub gateway: Gateway,
    pub health: Health,
    pub outbound: Outbound,
    pub crm: Crm,
    pub kb_feeds: KbFeeds,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").finish_non_exhaustive()
    }
}

/// A command id from the caller, or a fresh one.
fn command_id(given: &str) -> Result<String, Status> {
    if given.is_empty() {
        return Ok(uuid::Uuid::now_v7().simple().to_string());
    }
    if given.len() <= 128
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(given.to_owned())
    } else {
        Err(invalid("command_id", "at most 128 letters, digits, '-' or '_'"))
    }
}

/// A resource id: derived from the caller's command id, so a retried create names the same
/// resource; fresh otherwise.
fn resource_id(prefix: &str, tenant: &str, given_command_id: &str) -> String {
    if given_command_id.is_empty() {
        return format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    }
    let hash = digest::digest(
        &digest::SHA256,
        format!("{prefix}/{tenant}/{given_command_id}").as_bytes(),
    );
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{}", &hex[..26])
}

fn check_id(field: &str, prefix: &str, id: &str) -> Result<(), Status> {
    if id.starts_with(prefix) && validate_token("id", id).is_ok() {
        Ok(())
    } else {
        Err(invalid(field, format!("an id starting with {prefix:?}")))
    }
}

fn context(t: &Tenant) -> domain::Context {
    domain::Context {
        now_ms: now_ms(),
        sla_minutes: t.sla_minutes.clone(),
        targets: t.targets(),
    }
}

pub fn ticket_view(ticket: &Ticket) -> pb::Ticket {
    pb::Ticket {
        id: ticket.id.clone(),
        subject: ticket.subject.clone(),
        description: ticket.description.clone(),
        requester: Some(pb::Requester {
            contact_id: ticket.requester.contact_id.clone(),
            name: ticket.requester.name.clone(),
            email: ticket.requester.email.clone(),
        }),
        priority: ticket.priority.clone(),
        status: ticket.status.clone(),
        assignee_id: ticket.assignee_id.clone(),
        group: ticket.group.clone(),
        tags: ticket.tags.iter().cloned().collect(),
        custom_fields: ticket.custom_fields.clone().into_iter().collect(),
        due_at: ticket.due_at_ms.map(timestamp),
        conversation_ids: ticket.conversations.clone(),
        comments: ticket.comments.iter().map(|c| comment_view(&ticket.id, c)).collect(),
        external: external_view(ticket),
        created_at: Some(timestamp(ticket.created_at_ms)),
        updated_at: Some(timestamp(ticket.updated_at_ms)),
        created_by: Some(ticket.created_by.to_proto()),
    }
}

fn external_view(ticket: &Ticket) -> Vec<pb::ExternalLink> {
    let mut connectors: Vec<&str> = ticket.external.keys().map(String::as_str).collect();
    for p in &ticket.pending {
        if !connectors.contains(&p.connector_id.as_str()) {
            connectors.push(&p.connector_id);
        }
    }
    connectors
        .into_iter()
        .map(|connector| {
            let pending: Vec<_> = ticket.pending.iter().filter(|p| p.connector_id == connector).collect();
            pb::ExternalLink {
                connector_id: connector.to_owned(),
                external_id: ticket.external.get(connector).cloned().unwrap_or_default(),
                pending: u32::try_from(pending.len()).unwrap_or(u32::MAX),
                last_error: pending
                    .iter()
                    .map(|p| p.last_error.as_str())
                    .find(|e| !e.is_empty())
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

fn comment_view(ticket_id: &str, c: &domain::Comment) -> pb::Comment {
    pb::Comment {
        id: c.id.clone(),
        ticket_id: ticket_id.to_owned(),
        body: c.body.clone(),
        public: c.public,
        author: Some(c.author.to_proto()),
        origin: c.origin.clone(),
        created_at: Some(timestamp(c.created_at_ms)),
    }
}

impl Tickets {
    fn ticket(&self, tenant: &str, ticket_id: &str) -> Result<Ticket, Status> {
        self.store
            .read(tenant, |t| t.tickets.get(ticket_id).filter(|t| t.exists()).cloned())
            .ok_or_else(|| not_found("ticket", ticket_id))
    }

    async fn run(&self, tenant: &str, ticket_id: &str, command_id: &str, command: Command) -> Result<bool, Status> {
        let changed = self
            .store
            .execute(tenant, "ticket", ticket_id, command_id, |t| {
                let ticket = t.tickets.get(ticket_id).cloned().unwrap_or_default();
                domain::decide(&ticket, command.clone(), &context(t)).map_err(|r| rejected(r, ticket_id))
            })
            .await?;
        self.outbound.wake();
        Ok(changed)
    }

    fn pending_for(&self, tenant: &str, connector_id: &str) -> u32 {
        self.store.read(tenant, |t| {
            let count = t
                .with_pending
                .iter()
                .filter_map(|id| t.tickets.get(id))
                .flat_map(|ticket| &ticket.pending)
                .filter(|p| p.connector_id == connector_id)
                .count();
            u32::try_from(count).unwrap_or(u32::MAX)
        })
    }
}

#[tonic::async_trait]
impl TicketService for Tickets {
    async fn create_ticket(&self, request: Request<pb::CreateTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id_value = command_id(&r.command_id)?;
        let ticket_id = resource_id("tkt", &tenant, &r.command_id);
        let mut requester = r.requester.unwrap_or_default();
        // A ticket from a conversation is for that conversation's customer unless told otherwise.
        if !r.conversation_id.is_empty() && requester.contact_id.is_empty() {
            check_id("conversation_id", "conv_", &r.conversation_id)?;
            let (contact_id, name, email) = self.crm.requester_of(&tenant, &r.conversation_id).await?;
            requester.contact_id = contact_id;
            if requester.name.is_empty() {
                requester.name = name;
            }
            if requester.email.is_empty() {
                requester.email = email;
            }
        }
        let command = Command::Create {
            ticket_id: ticket_id.clone(),
            ticket: NewTicket {
                subject: r.subject,
                description: r.description,
                requester: Requester {
                    contact_id: requester.contact_id,
                    name: requester.name,
                    email: requester.email,
                },
                priority: if r.priority.is_empty() {
                    "normal".into()
                } else {
                    r.priority
                },
                assignee_id: r.assignee_id,
                group: r.group,
                tags: r.tags,
                custom_fields: r.custom_fields.into_iter().collect(),
                conversation_id: r.conversation_id,
                actor: Actor::from_proto(r.created_by.as_ref(), "api"),
                origin: String::new(),
            },
        };
        self.run(&tenant, &ticket_id, &command_id_value, command).await?;
        Ok(Response::new(ticket_view(&self.ticket(&tenant, &ticket_id)?)))
    }

    async fn get_ticket(&self, request: Request<pb::GetTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        Ok(Response::new(ticket_view(&self.ticket(&tenant, &r.ticket_id)?)))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        if !r.status.is_empty() && !domain::STATUSES.contains(&r.status.as_str()) {
            return Err(invalid("status", format!("one of {}", domain::STATUSES.join(", "))));
        }
        let size = match r.page_size {
            0 => 50,
            n if n <= 200 => n as usize,
            _ => return Err(invalid("page_size", "1 to 200")),
        };
        let offset: usize = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| invalid("page_token", "not a token from a previous page"))?
        };
        let mut tickets: Vec<Ticket> = self.store.read(&tenant, |t| {
            t.tickets
                .values()
                .filter(|ticket| ticket.exists())
                .filter(|ticket| r.status.is_empty() || ticket.status == r.status)
                .filter(|ticket| r.conversation_id.is_empty() || ticket.conversations.contains(&r.conversation_id))
                .filter(|ticket| r.contact_id.is_empty() || ticket.requester.contact_id == r.contact_id)
                .cloned()
                .collect()
        });
        tickets.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then_with(|| b.id.cmp(&a.id)));
        let total = tickets.len();
        let page: Vec<pb::Ticket> = tickets.iter().skip(offset).take(size).map(ticket_view).collect();
        let next = offset + page.len();
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: page,
            next_page_token: if next < total { next.to_string() } else { String::new() },
        }))
    }

    async fn update_ticket(&self, request: Request<pb::UpdateTicketRequest>) -> Result<Response<pb::Ticket>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id = command_id(&r.command_id)?;
        self.ticket(&tenant, &r.ticket_id)?;
        let changes = Changes {
            subject: r.subject,
            description: r.description,
            priority: r.priority,
            status: r.status,
            assignee_id: r.assignee_id,
            group: r.group,
            add_tags: r.add_tags,
            remove_tags: r.remove_tags,
            set_custom_fields: r.set_custom_fields.into_iter().collect(),
            remove_custom_fields: r.remove_custom_fields,
            actor: Actor::from_proto(r.actor.as_ref(), "api"),
            origin: String::new(),
        };
        self.run(&tenant, &r.ticket_id, &command_id, Command::Update(changes))
            .await?;
        Ok(Response::new(ticket_view(&self.ticket(&tenant, &r.ticket_id)?)))
    }

    async fn add_comment(&self, request: Request<pb::AddCommentRequest>) -> Result<Response<pb::Comment>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id_value = command_id(&r.command_id)?;
        self.ticket(&tenant, &r.ticket_id)?;
        let comment_id = resource_id("cmt", &tenant, &r.command_id);
        let command = Command::Comment {
            comment_id: comment_id.clone(),
            body: r.body,
            public: r.public,
            author: Actor::from_proto(r.author.as_ref(), "api"),
            origin: String::new(),
        };
        self.run(&tenant, &r.ticket_id, &command_id_value, command).await?;
        let ticket = self.ticket(&tenant, &r.ticket_id)?;
        let comment = ticket
            .comments
            .iter()
            .find(|c| c.id == comment_id)
            .ok_or_else(|| unavailable("the comment is not visible yet"))?;
        Ok(Response::new(comment_view(&ticket.id, comment)))
    }

    async fn link_conversation(
        &self,
        request: Request<pb::LinkConversationRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id = command_id(&r.command_id)?;
        self.ticket(&tenant, &r.ticket_id)?;
        let command = Command::Link {
            conversation_id: r.conversation_id,
            actor: Actor::from_proto(r.actor.as_ref(), "api"),
        };
        self.run(&tenant, &r.ticket_id, &command_id, command).await?;
        Ok(Response::new(ticket_view(&self.ticket(&tenant, &r.ticket_id)?)))
    }

    async fn unlink_conversation(
        &self,
        request: Request<pb::LinkConversationRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id = command_id(&r.command_id)?;
        self.ticket(&tenant, &r.ticket_id)?;
        let command = Command::Unlink {
            conversation_id: r.conversation_id,
            actor: Actor::from_proto(r.actor.as_ref(), "api"),
        };
        self.run(&tenant, &r.ticket_id, &command_id, command).await?;
        Ok(Response::new(ticket_view(&self.ticket(&tenant, &r.ticket_id)?)))
    }

    async fn get_ticket_history(
        &self,
        request: Request<pb::GetTicketHistoryRequest>,
    ) -> Result<Response<pb::TicketHistory>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        check_id("ticket_id", "tkt_", &r.ticket_id)?;
        let (records, _) = self
            .store
            .log()
            .load(LogContext::TICKET, &tenant, &r.ticket_id)
            .await
            .map_err(unavailable)?;
        if records.is_empty() {
            return Err(not_found("ticket", &r.ticket_id));
        }
        use pb::ticket_history_entry::Change;
        let entries = records
            .iter()
            .flat_map(|record| &record.commit.events)
            .filter_map(|event| {
                let change = match event.payload.clone()? {
                    Payload::TicketCreated(e) => Change::Created(e),
                    Payload::TicketUpdated(e) => Change::Updated(e),
                    Payload::TicketCommentAdded(e) => Change::CommentAdded(e),
                    Payload::TicketConversationLinked(e) => Change::ConversationLinked(e),
                    Payload::TicketConversationUnlinked(e) => Change::ConversationUnlinked(e),
                    Payload::TicketSyncScheduled(e) => Change::SyncScheduled(e),
                    Payload::TicketSyncSucceeded(e) => Change::SyncSucceeded(e),
                    Payload::TicketSyncFailed(e) => Change::SyncFailed(e),
                    Payload::TicketSyncAbandoned(e) => Change::SyncAbandoned(e),
                    _ => return None,
                };
                Some(pb::TicketHistoryEntry {
                    event_id: event.event_id.clone(),
                    occurred_at: event.occurred_at,
                    change: Some(change),
                })
            })
            .collect();
        Ok(Response::new(pb::TicketHistory { entries }))
    }

    async fn put_sla_policies(
        &self,
        request: Request<pb::PutSlaPoliciesRequest>,
    ) -> Result<Response<pb::SlaPolicies>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        for (priority, minutes) in &r.resolution_minutes {
            if !PRIORITIES.contains(&priority.as_str()) {
                return Err(invalid(
                    "resolution_minutes",
                    format!("{priority:?} is not one of {}", PRIORITIES.join(", ")),
                ));
            }
            if !(1..=525_600).contains(minutes) {
                return Err(invalid(&format!("resolution_minutes.{priority}"), "1 to 525600"));
            }
        }
        let set = pb::SlaPoliciesSet {
            resolution_minutes: r.resolution_minutes.clone(),
            actor: Some(Actor::from_proto(None, "api").to_proto()),
        };
        let command_id = uuid::Uuid::now_v7().simple().to_string();
        self.store
            .execute(&tenant, "settings", SETTINGS_AGGREGATE, &command_id, |t| {
                let current: std::collections::HashMap<String, u32> = t.sla_minutes.clone().into_iter().collect();
                if current == set.resolution_minutes {
                    Ok(Vec::new())
                } else {
                    Ok(vec![Payload::TicketSlaPoliciesSet(set.clone())])
                }
            })
            .await?;
        Ok(Response::new(pb::SlaPolicies {
            resolution_minutes: r.resolution_minutes,
        }))
    }

    async fn get_sla_policies(
        &self,
        request: Request<pb::GetSlaPoliciesRequest>,
    ) -> Result<Response<pb::SlaPolicies>, Status> {
        let tenant = tenant_of(&request)?;
        let resolution_minutes = self
            .store
            .read(&tenant, |t| t.sla_minutes.clone().into_iter().collect());
        Ok(Response::new(pb::SlaPolicies { resolution_minutes }))
    }

    async fn put_connector(
        &self,
        request: Request<pb::PutConnectorRequest>,
    ) -> Result<Response<pb::Connector>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let command_id_value = command_id(&r.command_id)?;
        let connector_id = if r.connector_id.is_empty() {
            resource_id("cnx", &tenant, &r.command_id)
        } else {
            check_id("connector_id", "cnx_", &r.connector_id)?;
            if self
                .store
                .read(&tenant, |t| !t.connectors.contains_key(&r.connector_id))
            {
                return Err(not_found("connector", &r.connector_id));
            }
            r.connector_id.clone()
        };
        let actor = Actor::from_proto(None, "api").to_proto();
        self.store
            .execute(&tenant, "connector", &connector_id, &command_id_value, |t| {
                let existing = t.connectors.get(&connector_id);
                let config = self
                    .gateway
                    .configure(&tenant, &connector_id, existing, &r, actor.clone())?;
                if existing.is_some_and(|c| c.config == config) {
                    return Ok(Vec::new());
                }
                Ok(vec![Payload::TicketConnectorConfigured(config)])
            })
            .await?;
        self.outbound.wake();
        self.kb_feeds.wake();
        let connector = self
            .store
            .read(&tenant, |t| t.connectors.get(&connector_id).cloned())
            .ok_or_else(|| unavailable("the connector is not visible yet"))?;
        Ok(Response::new(connector_view(&connector)))
    }

    async fn get_connector(
        &self,
        request: Request<pb::GetConnectorRequest>,
    ) -> Result<Response<pb::Connector>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let connector = self
            .store
            .read(&tenant, |t| t.connectors.get(&r.connector_id).cloned())
            .ok_or_else(|| not_found("connector", &r.connector_id))?;
        Ok(Response::new(connector_view(&connector)))
    }

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> Result<Response<pb::ListConnectorsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let connectors = self
            .store
            .read(&tenant, |t| t.connectors.values().map(connector_view).collect());
        Ok(Response::new(pb::ListConnectorsResponse { connectors }))
    }

    async fn delete_connector(
        &self,
        request: Request<pb::DeleteConnectorRequest>,
    ) -> Result<Response<pb::DeleteConnectorResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        check_id("connector_id", "cnx_", &r.connector_id)?;
        let command_id = uuid::Uuid::now_v7().simple().to_string();
        let deleted = pb::ConnectorDeleted {
            actor: Some(Actor::from_proto(None, "api").to_proto()),
        };
        self.store
            .execute(&tenant, "connector", &r.connector_id, &command_id, |t| {
                if t.connectors.contains_key(&r.connector_id) {
                    Ok(vec![Payload::TicketConnectorDeleted(deleted.clone())])
                } else {
                    Err(not_found("connector", &r.connector_id))
                }
            })
            .await?;
        // Its pending syncs are abandoned by the outbound worker.
        self.outbound.wake();
        Ok(Response::new(pb::DeleteConnectorResponse {}))
    }

    async fn get_connector_health(
        &self,
        request: Request<pb::GetConnectorHealthRequest>,
    ) -> Result<Response<pb::ConnectorHealth>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        let connector = self
            .store
            .read(&tenant, |t| t.connectors.get(&r.connector_id).cloned())
            .ok_or_else(|| not_found("connector", &r.connector_id))?;
        let pending = self.pending_for(&tenant, &r.connector_id);
        let mut health = self
            .health
            .report(&tenant, &r.connector_id, connector.config.enabled, pending);
        if connector.is_kb_feed() {
            health.kb_feed = Some(self.kb_feeds.health(&tenant, &connector));
        }
        Ok(Response::new(health))
    }

    async fn receive_external_update(
        &self,
        request: Request<pb::ReceiveExternalUpdateRequest>,
    ) -> Result<Response<pb::ReceiveExternalUpdateResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let answer =
            crate::inbound::receive(&self.store, &self.gateway, &self.health, &tenant, request.into_inner()).await?;
        self.outbound.wake();
        Ok(Response::new(answer))
    }

    async fn lookup_contact_profile(
        &self,
        request: Request<pb::LookupContactProfileRequest>,
    ) -> Result<Response<pb::ContactProfile>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        check_id("contact_id", "ctc_", &r.contact_id)?;
        match self.crm.lookup(&tenant, &r.contact_id, r.refresh).await {
            Ok(profile) => Ok(Response::new(profile)),
            Err(LookupError::Status(status)) => Err(status),
            Err(LookupError::Crm(error)) => Err(unavailable(format!("the CRM: {}", error.message))),
        }
    }

    async fn push_kb_feed(
        &self,
        request: Request<pb::PushKbFeedRequest>,
    ) -> Result<Response<pb::KbFeedSyncResult>, Status> {
        let tenant = tenant_of(&request)?;
        let r = request.into_inner();
        check_id("connector_id", "cnx_", &r.connector_id)?;
        // Checked here so that unknown ids never reach the per-connector health.
        if !self.store.read(&tenant, |t| {
            t.connectors.get(&r.connector_id).is_some_and(|c| c.is_kb_feed())
        }) {
            return Err(not_found("kb_feed connector", &r.connector_id));
        }
        let result = self
            .kb_feeds
            .sync(&tenant, &r.connector_id, Some(r.document.as_bytes()))
            .await
            .map_err(crate::kbfeed::SyncError::into_status)?;
        Ok(Response::new(result))
    }
}
