//! The conversation API over gRPC: commands are decided against the read model under a
//! per-aggregate lock and appended with optimistic concurrency; the answer is given once the
//! read model has applied the append, so a client reads its own writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use yy_eventlog::{
    AppendError, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, partition_of,
};
use yy_proto::conversation::v1 as pb;
use yy_proto::conversation::v1::conversation_service_server::ConversationService;

pub(crate) use yy_runtime::tenant_of;

use crate::directory::{ConversationEntry, ConversationFilter, Directory, Tenant};
use crate::domain::{
    self, ContactCommand, ConversationCommand, Limits, Open, Post, Rejection, Update, check_identity, decide_contact,
    decide_conversation,
};

/// How often a command is decided again after losing a race with another writer.
pub(crate) const MAX_ATTEMPTS: usize = 5;
/// How long a command waits for the read model to apply a commit before giving up.
pub(crate) const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The conversation API.
#[derive(Clone, Debug)]
pub struct Conversations {
    log: EventLog,
    directory: Follower<Directory>,
    limits: Limits,
    locks: Arc<Locks>,
}

impl Conversations {
    /// Serves commands and queries over `directory`, appending to `log`.
    pub fn new(log: EventLog, directory: Follower<Directory>, limits: Limits) -> Self {
        Conversations {
            log,
            directory,
            limits,
            locks: Arc::default(),
        }
    }
}

/// One async mutex per aggregate (and per tenant for merges), so that commands on one
/// aggregate are decided one at a time in this process; entries are dropped when unused.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct LockGuard {
    locks: Arc<Locks>,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            held.remove(&self.key);
        }
    }
}

impl Locks {
    pub(crate) async fn lock(self: &Arc<Self>, key: String) -> LockGuard {
        let mutex = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        LockGuard {
            locks: self.clone(),
            key,
            guard: Some(guard),
        }
    }
}

/// The gRPC status for a rejection, with its `yy-error` slug.
fn rejected(rejection: Rejection) -> Status {
    let (code, slug) = match &rejection {
        Rejection::Invalid { .. } => (tonic::Code::InvalidArgument, "validation-failed"),
        Rejection::MessageTooLarge { .. } => (tonic::Code::InvalidArgument, "message-too-large"),
        Rejection::NotFound(_) => (tonic::Code::NotFound, "not-found"),
        Rejection::InvalidState(_) => (tonic::Code::FailedPrecondition, "invalid-state"),
    };
    yy_runtime::error_status(code, slug, rejection.to_string())
}

fn not_found(what: &str, id: &str) -> Status {
    rejected(Rejection::NotFound(format!("{what} {id}")))
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "event log unavailable");
    yy_runtime::error_status(
        tonic::Code::Unavailable,
        "unavailable",
        "the event log is unavailable; retry",
    )
}

pub(crate) fn correlation_of<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Checks that `id` is one of ours with `prefix`; anything else cannot exist.
fn check_id(field: &'static str, id: &str, prefix: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(rejected(Rejection::Invalid {
            field,
            reason: "required".into(),
        }));
    }
    let ok = id
        .strip_prefix(prefix)
        .is_some_and(|rest| (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(not_found(prefix.trim_end_matches('_'), id))
    }
}

/// A fresh id, or one derived from the client's command id so that a retry names the same
/// resource.
fn new_id(prefix: &str, tenant: &str, command_id: &str, salt: &str) -> String {
    if command_id.is_empty() {
        return format!("{prefix}{}", uuid::Uuid::now_v7().simple());
    }
    let digest = Sha256::digest(format!("{tenant}\0{salt}\0{command_id}"));
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

pub(crate) fn checked_command_id(given: &str) -> Result<String, Status> {
    if given.is_empty() {
        return Ok(uuid::Uuid::now_v7().to_string());
    }
    let ok = given.len() <= 128 && given.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(given.to_owned())
    } else {
        Err(rejected(Rejection::Invalid {
            field: "command_id",
            reason: "at most 128 visible ASCII characters".into(),
        }))
    }
}

fn page_size(requested: u32, default: u32) -> Result<usize, Status> {
    match requested {
        0 => Ok(default as usize),
        1..=100 => Ok(requested as usize),
        _ => Err(rejected(Rejection::Invalid {
            field: "page_size",
            reason: "must be 1 to 100".into(),
        })),
    }
}

fn timestamp(ms: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

pub(crate) fn now() -> prost_types::Timestamp {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: elapsed.as_secs() as i64,
        nanos: elapsed.subsec_nanos() as i32,
    }
}

fn conversation_view(entry: &ConversationEntry) -> pb::Conversation {
    let state = &entry.state;
    pb::Conversation {
        id: state.id.clone(),
        contact_id: state.contact_id.clone(),
        channel: state.channel.clone(),
        subject: state.subject.clone(),
        status: state.status,
        priority: state.priority,
        tags: state.tags.iter().cloned().collect(),
        attributes: state.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        agent_id: state.agent_id.clone(),
        message_count: state.message_count,
        csat: state.csat.as_ref().map(|c| pb::Csat {
            score: c.score,
            comment: c.comment.clone(),
            submitted_at: timestamp(c.submitted_at_ms),
        }),
        created_at: timestamp(state.created_at_ms),
        updated_at: timestamp(state.updated_at_ms),
    }
}

fn message_view(conversation_id: &str, message: &crate::directory::StoredMessage) -> pb::Message {
    pb::Message {
        id: message.id.clone(),
        conversation_id: conversation_id.to_owned(),
        role: message.role.clone(),
        text: message.text.clone(),
        content: message.content(),
        author_id: message.author_id.clone(),
        position: message.position,
        created_at: timestamp(message.created_at_ms),
    }
}

fn contact_view(tenant: &Tenant, root: &str) -> Option<pb::Contact> {
    let entry = tenant.resolve_contact(root)?;
    let state = &entry.state;
    Some(pb::Contact {
        id: state.id.clone(),
        name: state.name.clone(),
        identities: tenant
            .identities_of(&state.id)
            .into_iter()
            .map(|(channel, external_id)| pb::ChannelIdentity { channel, external_id })
            .collect(),
        attributes: state.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        merged_contact_ids: tenant.merged_into(&state.id),
        created_at: timestamp(state.created_at_ms),
        updated_at: timestamp(state.updated_at_ms),
    })
}

impl Conversations {
    /// Decides `decide` against the aggregate's current state and appends what it produced,
    /// retrying when another writer got there first; returns once the read model includes it.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        tenant: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        command_id: &str,
        correlation_id: &str,
        already_ran: impl Fn(&Tenant) -> bool,
        decide: impl Fn(Option<&Tenant>) -> Result<(Vec<Payload>, u64), Rejection>,
    ) -> Result<(), Status> {
        let _lock = self.locks.lock(format!("{tenant}/{aggregate_id}")).await;
        let partition = partition_of(aggregate_id, self.log.config().partitions);
        for _ in 0..MAX_ATTEMPTS {
            let (payloads, sequence) = {
                let directory = self.directory.read();
                let tenant_data = directory.state.tenant(tenant);
                if tenant_data.is_some_and(&already_ran) {
                    return Ok(());
                }
                decide(tenant_data).map_err(rejected)?
            };
            if payloads.is_empty() {
                return Ok(());
            }
            let occurred_at = now();
            let events = payloads
                .into_iter()
                .map(|payload| EventEnvelope {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.to_owned(),
                    aggregate_type: aggregate_type.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    occurred_at: Some(occurred_at),
                    correlation_id: correlation_id.to_owned(),
                    causation_id: command_id.to_owned(),
                    schema_version: 1,
                    payload: Some(payload),
                    ..Default::default()
                })
                .collect();
            let commit = NewCommit {
                context: LogContext::CONV,
                tenant_id: tenant.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
                command_id: command_id.to_owned(),
                events,
                trace: None,
            };
            let expected = if sequence == 0 {
                Expected::NoStream
            } else {
                Expected::LastSequence(sequence)
            };
            match self.log.append(commit, expected).await {
                Ok(appended) => {
                    self.wait_applied(appended.partition, appended.sequence).await?;
                    return Ok(());
                }
                Err(AppendError::Conflict { .. }) => {
                    // Another instance wrote first: catch up with it, then decide again.
                    let (_, last) = self
                        .log
                        .load_after(LogContext::CONV, tenant, aggregate_id, sequence)
                        .await
                        .map_err(unavailable)?;
                    self.wait_applied(partition, last).await?;
                }
                Err(AppendError::Empty) => return Ok(()),
                Err(AppendError::Log(error)) => return Err(unavailable(error)),
            }
        }
        Err(yy_runtime::error_status(
            tonic::Code::Aborted,
            "conflict",
            "concurrent changes kept conflicting; retry",
        ))
    }

    async fn wait_applied(&self, partition: u32, sequence: u64) -> Result<(), Status> {
        tokio::time::timeout(APPLY_TIMEOUT, self.directory.applied(partition, sequence))
            .await
            .map_err(|_| unavailable("the read model did not apply a commit in time"))
    }

    fn read<T>(&self, tenant: &str, f: impl FnOnce(&Tenant) -> Option<T>) -> Option<T> {
        let directory = self.directory.read();
        directory.state.tenant(tenant).and_then(f)
    }

    fn conversation(&self, tenant: &str, id: &str) -> Result<pb::Conversation, Status> {
        self.read(tenant, |t| t.conversation(id).map(conversation_view))
            .ok_or_else(|| not_found("conversation", id))
    }

    fn contact(&self, tenant: &str, id: &str) -> Result<pb::Contact, Status> {
        self.read(tenant, |t| contact_view(t, id))
            .ok_or_else(|| not_found("contact", id))
    }

    fn conversation_state<'a>(tenant: Option<&'a Tenant>, id: &str) -> (Option<&'a domain::Conversation>, u64) {
        match tenant.and_then(|t| t.conversation(id)) {
            Some(entry) => (Some(&entry.state), entry.sequence),
            None => (None, 0),
        }
    }

    async fn conversation_command(
        &self,
        tenant: &str,
        conversation_id: &str,
        command_id: &str,
        correlation_id: &str,
        command: ConversationCommand,
    ) -> Result<pb::Conversation, Status> {
        check_id("conversation_id", conversation_id, "conv_")?;
        let command_id = checked_command_id(command_id)?;
        let limits = self.limits;
        // A message's id derives from the client's command id, so finding it in the history
        // recognises a retry even after the command left the recent-command memory.
        let posted_id = match &command {
            ConversationCommand::Post(post) => Some(post.message_id.clone()),
            _ => None,
        };
        self.execute(
            tenant,
            "conversation",
            conversation_id,
            &command_id,
            correlation_id,
            |t| {
                t.conversation(conversation_id).is_some_and(|c| {
                    c.recently_ran(&command_id)
                        || posted_id
                            .as_ref()
                            .is_some_and(|id| c.messages.iter().rev().any(|m| &m.id == id))
                })
            },
            |t| {
                let (state, sequence) = Self::conversation_state(t, conversation_id);
                if state.is_none() {
                    return Err(Rejection::NotFound(format!("conversation {conversation_id}")));
                }
                Ok((decide_conversation(state, command.clone(), limits)?, sequence))
            },
        )
        .await?;
        self.conversation(tenant, conversation_id)
    }

    async fn contact_command(
        &self,
        tenant: &str,
        contact_id: &str,
        command_id: &str,
        correlation_id: &str,
        decide: impl Fn(Option<&Tenant>) -> Result<(Vec<Payload>, u64), Rejection>,
    ) -> Result<(), Status> {
        self.execute(
            tenant,
            "contact",
            contact_id,
            command_id,
            correlation_id,
            |t| t.contact(contact_id).is_some_and(|c| c.recently_ran(command_id)),
            decide,
        )
        .await
    }

    /// Runs a command that takes nothing but the conversation.
    async fn argumentless(
        &self,
        request: Request<pb::ConversationCommand>,
        command: ConversationCommand,
    ) -> Result<pb::Conversation, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        self.conversation_command(
            &tenant,
            &request.conversation_id,
            &request.command_id,
            &correlation,
            command,
        )
        .await
    }

    fn list(
        &self,
        tenant: &str,
        filter: &ConversationFilter,
        page_token: &str,
        page_size: usize,
    ) -> Result<pb::ListConversationsResponse, Status> {
        if !page_token.is_empty() {
            check_id("page_token", page_token, "conv_").map_err(|_| {
                rejected(Rejection::Invalid {
                    field: "page_token",
                    reason: "not a token this API issued".into(),
                })
            })?;
        }
        let after = (!page_token.is_empty()).then_some(page_token);
        Ok(self
            .read(tenant, |t| {
                let (page, more) = t.list_conversations(filter, after, page_size);
                let conversations: Vec<pb::Conversation> = page.into_iter().map(conversation_view).collect();
                let next_page_token = match (more, conversations.last()) {
                    (true, Some(last)) => last.id.clone(),
                    _ => String::new(),
                };
                Some(pb::ListConversationsResponse {
                    conversations,
                    next_page_token,
                })
            })
            .unwrap_or_default())
    }
}

#[tonic::async_trait]
impl ConversationService for Conversations {
    async fn open_conversation(
        &self,
        request: Request<pb::OpenConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        check_id("contact_id", &request.contact_id, "ctc_")?;
        let command_id = checked_command_id(&request.command_id)?;
        let conversation_id = new_id("conv_", &tenant, &request.command_id, "open");
        let contact_id = self
            .read(&tenant, |t| {
                t.resolve_contact(&request.contact_id).map(|c| c.state.id.clone())
            })
            .ok_or_else(|| not_found("contact", &request.contact_id))?;
        let open = Open {
            id: conversation_id.clone(),
            contact_id,
            channel: request.channel,
            subject: request.subject,
            priority: request.priority,
            tags: request.tags,
            attributes: request.attributes.into_iter().collect(),
        };
        let limits = self.limits;
        self.execute(
            &tenant,
            "conversation",
            &conversation_id,
            &command_id,
            &correlation,
            |t| t.conversation(&conversation_id).is_some(),
            |t| {
                let (state, sequence) = Self::conversation_state(t, &conversation_id);
                Ok((
                    decide_conversation(state, ConversationCommand::Open(open.clone()), limits)?,
                    sequence,
                ))
            },
        )
        .await?;
        self.conversation(&tenant, &conversation_id).map(Response::new)
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let tenant = tenant_of(&request)?;
        let id = &request.get_ref().conversation_id;
        check_id("conversation_id", id, "conv_")?;
        self.conversation(&tenant, id).map(Response::new)
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        let size = page_size(request.page_size, 20)?;
        let contact_ids = if request.contact_id.is_empty() {
            None
        } else {
            check_id("contact_id", &request.contact_id, "ctc_")?;
            let family = self
                .read(&tenant, |t| {
                    t.resolve_contact(&request.contact_id)
                        .map(|c| t.contact_family(&c.state.id))
                })
                .ok_or_else(|| not_found("contact", &request.contact_id))?;
            Some(family)
        };
        for status in &request.statuses {
            if pb::ConversationStatus::try_from(*status).map_or(true, |s| s == pb::ConversationStatus::Unspecified) {
                return Err(rejected(Rejection::Invalid {
                    field: "statuses",
                    reason: "unknown status".into(),
                }));
            }
        }
        let filter = ConversationFilter {
            statuses: request.statuses,
            channel: (!request.channel.is_empty()).then_some(request.channel),
            tag: (!request.tag.is_empty()).then_some(request.tag),
            priority: (request.priority != 0).then_some(request.priority),
            contact_ids,
        };
        self.list(&tenant, &filter, &request.page_token, size)
            .map(Response::new)
    }

    async fn update_conversation(
        &self,
        request: Request<pb::UpdateConversationRequest>,
    ) -> Result<Response<pb::Conversation>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let update = Update {
            status: (request.status != 0).then_some(request.status),
            agent_id: request.agent_id,
            priority: (request.priority != 0).then_some(request.priority),
            add_tags: request.add_tags,
            remove_tags: request.remove_tags,
            set_attributes: request.set_attributes.into_iter().collect(),
            remove_attributes: request.remove_attributes,
        };
        self.conversation_command(
            &tenant,
            &request.conversation_id,
            &request.command_id,
            &correlation,
            ConversationCommand::Update(update),
        )
        .await
        .map(Response::new)
    }

    async fn resolve_conversation(
        &self,
        request: Request<pb::ConversationCommand>,
    ) -> Result<Response<pb::Conversation>, Status> {
        self.argumentless(request, ConversationCommand::Resolve)
            .await
            .map(Response::new)
    }

    async fn reopen_conversation(
        &self,
        request: Request<pb::ConversationCommand>,
    ) -> Result<Response<pb::Conversation>, Status> {
        self.argumentless(request, ConversationCommand::Reopen)
            .await
            .map(Response::new)
    }

    async fn post_message(&self, request: Request<pb::PostMessageRequest>) -> Result<Response<pb::Message>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let conversation_id = request.conversation_id.clone();
        let message_id = new_id("msg_", &tenant, &request.command_id, &conversation_id);
        let post = Post {
            message_id: message_id.clone(),
            role: request.role,
            text: request.text,
            content: request.content,
            author_id: request.author_id,
        };
        self.conversation_command(
            &tenant,
            &conversation_id,
            &request.command_id,
            &correlation,
            ConversationCommand::Post(post),
        )
        .await?;
        self.read(&tenant, |t| {
            let entry = t.conversation(&conversation_id)?;
            // Recent messages are at the end; a retried command finds its message there.
            let message = entry.messages.iter().rev().find(|m| m.id == message_id)?;
            Some(message_view(&conversation_id, message))
        })
        .map(Response::new)
        .ok_or_else(|| Status::internal("the stored message is missing from the read model"))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        check_id("conversation_id", &request.conversation_id, "conv_")?;
        let size = page_size(request.page_size, 50)?;
        let after: usize = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .strip_prefix("pos_")
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| {
                    rejected(Rejection::Invalid {
                        field: "page_token",
                        reason: "not a token this API issued".into(),
                    })
                })?
        };
        self.read(&tenant, |t| {
            let entry = t.conversation(&request.conversation_id)?;
            let messages: Vec<pb::Message> = entry
                .messages
                .iter()
                .skip(after)
                .take(size)
                .map(|m| message_view(&request.conversation_id, m))
                .collect();
            let next = after + messages.len();
            let next_page_token = if next < entry.messages.len() {
                format!("pos_{next}")
            } else {
                String::new()
            };
            Some(pb::ListMessagesResponse {
                messages,
                next_page_token,
            })
        })
        .map(Response::new)
        .ok_or_else(|| not_found("conversation", &request.conversation_id))
    }

    async fn submit_csat(&self, request: Request<pb::SubmitCsatRequest>) -> Result<Response<pb::Conversation>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        self.conversation_command(
            &tenant,
            &request.conversation_id,
            &request.command_id,
            &correlation,
            ConversationCommand::Rate {
                score: request.score,
                comment: request.comment,
            },
        )
        .await
        .map(Response::new)
    }

    async fn upsert_contact(
        &self,
        request: Request<pb::UpsertContactRequest>,
    ) -> Result<Response<pb::UpsertContactResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        let identity = check_identity(request.identity.as_ref()).map_err(rejected)?;
        let command_id = checked_command_id(&request.command_id)?;
        let existing = self.read(&tenant, |t| {
            t.contact_with_identity(&identity.channel, &identity.external_id)
                .map(|c| c.state.id.clone())
        });
        // A contact created from an identity gets an id derived from it, so that concurrent
        // upserts of one new identity create one contact.
        let contact_id = existing.clone().unwrap_or_else(|| {
            let digest = Sha256::digest(format!("{tenant}\0{}\0{}", identity.channel, identity.external_id));
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("ctc_{hex}")
        });
        let command = ContactCommand::Upsert {
            identity,
            name: request.name,
            attributes: request.attributes.into_iter().collect(),
        };
        self.contact_command(&tenant, &contact_id, &command_id, &correlation, |t| {
            let entry = t.and_then(|t| t.contact(&contact_id));
            let sequence = entry.map_or(0, |e| e.sequence);
            Ok((decide_contact(entry.map(|e| &e.state), command.clone())?, sequence))
        })
        .await?;
        let contact = self.contact(&tenant, &contact_id)?;
        Ok(Response::new(pb::UpsertContactResponse {
            contact: Some(contact),
            created: existing.is_none(),
        }))
    }

    async fn get_contact(&self, request: Request<pb::GetContactRequest>) -> Result<Response<pb::Contact>, Status> {
        let tenant = tenant_of(&request)?;
        let id = &request.get_ref().contact_id;
        check_id("contact_id", id, "ctc_")?;
        self.contact(&tenant, id).map(Response::new)
    }

    async fn link_identity(&self, request: Request<pb::LinkIdentityRequest>) -> Result<Response<pb::Contact>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        check_id("contact_id", &request.contact_id, "ctc_")?;
        let identity = check_identity(request.identity.as_ref()).map_err(rejected)?;
        let command_id = checked_command_id(&request.command_id)?;
        // Identities are unique per tenant: links are decided one at a time per tenant.
        let _tenant_lock = self.locks.lock(format!("{tenant}/identities")).await;
        let root = self
            .read(&tenant, |t| {
                t.resolve_contact(&request.contact_id).map(|c| c.state.id.clone())
            })
            .ok_or_else(|| not_found("contact", &request.contact_id))?;
        self.contact_command(&tenant, &root, &command_id, &correlation, |t| {
            let t = t.ok_or_else(|| Rejection::NotFound(format!("contact {root}")))?;
            let entry = t
                .contact(&root)
                .ok_or_else(|| Rejection::NotFound(format!("contact {root}")))?;
            let owner = t
                .contact_with_identity(&identity.channel, &identity.external_id)
                .map(|c| c.state.id.clone());
            let command = ContactCommand::Link {
                identity: identity.clone(),
                owner,
            };
            Ok((decide_contact(Some(&entry.state), command)?, entry.sequence))
        })
        .await?;
        self.contact(&tenant, &root).map(Response::new)
    }

    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::Contact>, Status> {
        let tenant = tenant_of(&request)?;
        let correlation = correlation_of(&request);
        let request = request.into_inner();
        check_id("target_contact_id", &request.target_contact_id, "ctc_")?;
        check_id("source_contact_id", &request.source_contact_id, "ctc_")?;
        let command_id = checked_command_id(&request.command_id)?;
        // Merges are decided one at a time per tenant, so two crossing merges cannot form a cycle.
        let _tenant_lock = self.locks.lock(format!("{tenant}/identities")).await;
        let (target, source) = self
            .read(&tenant, |t| {
                let target = t.resolve_contact(&request.target_contact_id)?.state.id.clone();
                let source = t.resolve_contact(&request.source_contact_id)?.state.id.clone();
                Some((target, source))
            })
            .ok_or_else(|| {
                let missing = if self
                    .read(&tenant, |t| t.contact(&request.target_contact_id).map(|_| ()))
                    .is_none()
                {
                    &request.target_contact_id
                } else {
                    &request.source_contact_id
                };
                not_found("contact", missing)
            })?;
        if target == source {
            // Already one contact (the same, or merged before): nothing to do.
            return self.contact(&tenant, &target).map(Response::new);
        }
        self.contact_command(&tenant, &source, &command_id, &correlation, |t| {
            let entry = t
                .and_then(|t| t.contact(&source))
                .ok_or_else(|| Rejection::NotFound(format!("contact {source}")))?;
            let command = ContactCommand::MergeInto { target: target.clone() };
            Ok((decide_contact(Some(&entry.state), command)?, entry.sequence))
        })
        .await?;
        self.contact(&tenant, &target).map(Response::new)
    }

    async fn list_contact_conversations(
        &self,
        request: Request<pb::ListContactConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let request = request.into_inner();
        check_id("contact_id", &request.contact_id, "ctc_")?;
        let size = page_size(request.page_size, 20)?;
        let family: BTreeSet<String> = self
            .read(&tenant, |t| {
                t.resolve_contact(&request.contact_id)
                    .map(|c| t.contact_family(&c.state.id))
            })
            .ok_or_else(|| not_found("contact", &request.contact_id))?;
        let filter = ConversationFilter {
            contact_ids: Some(family),
            ..ConversationFilter::default()
        };
        self.list(&tenant, &filter, &request.page_token, size)
            .map(Response::new)
    }
}
