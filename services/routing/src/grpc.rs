//! The routing API over gRPC: commands go to the tenant's desk (see `engine`), queries read the
//! desk as the log has it. Replies and resolutions go on to the conversation service, which owns
//! messages and statuses.

use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use yy_dispatch::Status as Seat;
use yy_proto::conversation::v1 as conv;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::routing::v1 as pb;
use yy_proto::routing::v1::routing_service_server::RoutingService;

use crate::desk::Desk;
use crate::engine::{Command, Destination, Engine, MAX_NOTE_CHARS, now_ms, understanding};
use crate::errors::{invalid, not_found, precondition};
use crate::events::{profile_to_proto, skills_from_proto, strategy_name};
use crate::sync::COMMAND_PREFIX;
use crate::understanding::MessageContext;
use yy_runtime::{for_tenant, tenant_of};

/// The routing API.
#[derive(Clone)]
pub struct Routing {
    engine: Engine,
    conversations: ConversationServiceClient<Channel>,
}

impl Routing {
    pub fn new(engine: Engine, conversations: ConversationServiceClient<Channel>) -> Self {
        Routing { engine, conversations }
    }

    fn read<T>(&self, tenant: &str, f: impl FnOnce(&Desk) -> T) -> T {
        let desks = self.engine.desks().read();
        let empty = Desk::default();
        f(desks.state.tenant(tenant).unwrap_or(&empty))
    }

    fn agent(&self, tenant: &str, agent: &str) -> Result<pb::Agent, Status> {
        self.read(tenant, |desk| agent_view(desk, agent))
            .ok_or_else(|| not_found("agent", agent))
    }

    fn status(&self, tenant: &str, conversation: &str) -> Result<pb::RoutingStatus, Status> {
        let known = {
            let view = self.engine.view().read();
            view.state
                .tenant(tenant)
                .and_then(|v| v.conversation(conversation))
                .is_some()
        };
        if !known {
            return Err(not_found("conversation", conversation));
        }
        Ok(self.read(tenant, |desk| routing_status(desk, conversation)))
    }

    /// NOT_FOUND for an agent or a conversation the tenant does not have, before any command
    /// about them: another tenant's ids answer exactly like ids that exist nowhere.
    fn known(&self, tenant: &str, agent: Option<&str>, conversation: Option<&str>) -> Result<(), Status> {
        if let Some(agent) = agent {
            required("agent_id", agent)?;
            if !self.read(tenant, |desk| desk.dispatcher.agent(agent).is_some()) {
                return Err(not_found("agent", agent));
            }
        }
        if let Some(conversation) = conversation {
            required("conversation_id", conversation)?;
            let view = self.engine.view().read();
            if view
                .state
                .tenant(tenant)
                .and_then(|v| v.conversation(conversation))
                .is_none()
            {
                return Err(not_found("conversation", conversation));
            }
        }
        Ok(())
    }

    /// Whether the conversation is resolved and was last assigned to `agent`.
    fn resolved_by(&self, tenant: &str, agent: &str, conversation: &str) -> bool {
        let view = self.engine.view().read();
        view.state
            .tenant(tenant)
            .and_then(|v| v.conversation(conversation))
            .is_some_and(|c| {
                c.status() == yy_proto::conversation::v1::ConversationStatus::Resolved && c.last_agent_id == agent
            })
    }

    fn assigned_to(&self, tenant: &str, agent: &str, conversation: &str) -> Result<(), Status> {
        self.known(tenant, Some(agent), Some(conversation))?;
        let assigned = self.read(tenant, |desk| {
            matches!(
                desk.dispatcher.conversation(conversation).map(|c| &c.status),
                Some(Seat::Assigned { agent: a, .. }) if a == agent
            )
        });
        if assigned {
            Ok(())
        } else {
            Err(precondition(&format!(
                "conversation {conversation} is not assigned to agent {agent}"
            )))
        }
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(invalid(field, "required"))
    } else {
        Ok(())
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

fn agent_view(desk: &Desk, agent: &str) -> Option<pb::Agent> {
    let a = desk.dispatcher.agent(agent)?;
    Some(pb::Agent {
        agent_id: a.id.clone(),
        profile: Some(profile_to_proto(
            desk.names.get(agent).map_or("", String::as_str),
            &a.profile,
        )),
        presence: a.presence.as_str().to_owned(),
        assigned: a.assigned.iter().cloned().collect(),
        offered: a.offered.iter().cloned().collect(),
    })
}

fn queue_view(desk: &Desk, queue: &yy_dispatch::Queue) -> pb::Queue {
    pb::Queue {
        settings: Some(pb::QueueConfigured {
            queue: queue.name.clone(),
            strategy: strategy_name(queue.config.strategy).to_owned(),
            offer_timeout_ms: queue.config.offer_timeout_ms,
            first_response_secs: queue.config.sla.first_response_secs.unwrap_or(0),
            max_wait_secs: queue.config.sla.max_wait_secs.unwrap_or(0),
            escalation: desk
                .escalations
                .get(&queue.name)
                .map(|steps| steps.iter().map(|s| s.to_proto()).collect())
                .unwrap_or_default(),
        }),
        waiting: queue.waiting().map(str::to_owned).collect(),
    }
}

fn routing_status(desk: &Desk, conversation: &str) -> pb::RoutingStatus {
    let mut status = pb::RoutingStatus {
        conversation_id: conversation.to_owned(),
        state: "bot".into(),
        ..Default::default()
    };
    let Some(seat) = desk.dispatcher.conversation(conversation) else {
        return status;
    };
    status.queue = seat.queue.clone();
    status.priority = u32::from(seat.priority);
    status.agent_id = seat.status.agent().unwrap_or_default().to_owned();
    status.state = match seat.status {
        Seat::Waiting => "waiting",
        Seat::Offered { .. } => "offered",
        Seat::Assigned { .. } => "assigned",
    }
    .into();
    if let Some(position) = desk.dispatcher.position(conversation, now_ms()) {
        status.position = position.position;
        status.estimated_wait_secs = position.estimated_wait_secs;
    }
    status
}

fn agent_conversation(desk: &Desk, conversation: &str) -> Option<pb::AgentConversation> {
    let seat = desk.dispatcher.conversation(conversation)?;
    let (state, expires) = match &seat.status {
        Seat::Offered { expires_at_ms, .. } => ("offered", *expires_at_ms),
        Seat::Assigned { .. } => ("assigned", 0),
        Seat::Waiting => return None,
    };
    Some(pb::AgentConversation {
        conversation_id: conversation.to_owned(),
        state: state.into(),
        queue: seat.queue.clone(),
        priority: u32::from(seat.priority),
        channel: seat.channel.clone(),
        offer_expires_at_ms: expires,
        handoff: desk.conversation(conversation).and_then(|c| c.handoff()),
    })
}

#[tonic::async_trait]
impl RoutingService for Routing {
    async fn put_rules(&self, request: Request<pb::PutRulesRequest>) -> Result<Response<pb::RuleSet>, Status> {
        let tenant = tenant_of(&request)?;
        let json = request.into_inner().rules_json;
        self.engine.run(&tenant, Command::PublishRules { json }).await?;
        self.get_rules(for_tenant(&tenant, pb::GetRulesRequest {})).await
    }

    async fn get_rules(&self, request: Request<pb::GetRulesRequest>) -> Result<Response<pb::RuleSet>, Status> {
        let tenant = tenant_of(&request)?;
        Ok(Response::new(self.read(&tenant, |desk| match &desk.rules {
            Some(rules) => pb::RuleSet {
                version: rules.version,
                rules_json: rules.json.clone(),
                published_at_ms: rules.at_ms,
            },
            None => pb::RuleSet {
                version: 0,
                rules_json: crate::desk::DEFAULT_RULES.to_owned(),
                published_at_ms: 0,
            },
        })))
    }

    async fn put_intents(&self, request: Request<pb::PutIntentsRequest>) -> Result<Response<pb::IntentSet>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        self.engine
            .run(
                &tenant,
                Command::ConfigureIntents {
                    json: body.intents_json,
                    extend_default: body.extend_default,
                },
            )
            .await?;
        self.get_intents(for_tenant(&tenant, pb::GetIntentsRequest {})).await
    }

    async fn get_intents(&self, request: Request<pb::GetIntentsRequest>) -> Result<Response<pb::IntentSet>, Status> {
        let tenant = tenant_of(&request)?;
        Ok(Response::new(self.read(&tenant, |desk| {
            let mut names: Vec<String> = desk.analyzer().intent_model().intents().map(str::to_owned).collect();
            names.sort();
            let (json, extend) = desk
                .intents
                .as_ref()
                .map_or((String::new(), false), |i| (i.json.clone(), i.extend_default));
            pb::IntentSet {
                names,
                intents_json: json,
                extend_default: extend,
            }
        })))
    }

    async fn analyze(&self, request: Request<pb::AnalyzeRequest>) -> Result<Response<pb::AnalyzeResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        if body.text.is_empty() || body.text.len() > 16 * 1024 {
            return Err(invalid("text", "must be 1 to 16384 bytes"));
        }
        let (analyzer, rules) = self.read(&tenant, |desk| (desk.analyzer(), desk.rules().0));
        let context = MessageContext {
            channel: if body.channel.is_empty() {
                "web".into()
            } else {
                body.channel
            },
            contact_attributes: body.contact_attributes.into_iter().collect(),
            now: now_ms() / 1000,
            ..MessageContext::default()
        };
        let (analysis, decision) = crate::understanding::route(&analyzer, &rules, &body.text, &context);
        Ok(Response::new(pb::AnalyzeResponse {
            understanding: Some(understanding(&analysis)),
            rule_name: decision.rule_name.to_string(),
            decision_json: serde_json::to_string(&decision).unwrap_or_default(),
        }))
    }

    async fn put_agent(&self, request: Request<pb::PutAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        let profile = body.profile.unwrap_or_default();
        self.engine
            .run(
                &tenant,
                Command::PutAgent {
                    agent: body.agent_id.clone(),
                    profile,
                },
            )
            .await?;
        self.agent(&tenant, &body.agent_id).map(Response::new)
    }

    async fn get_agent(&self, request: Request<pb::GetAgentRequest>) -> Result<Response<pb::Agent>, Status> {
        let tenant = tenant_of(&request)?;
        self.agent(&tenant, &request.get_ref().agent_id).map(Response::new)
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        Ok(Response::new(self.read(&tenant, |desk| {
            pb::ListAgentsResponse {
                agents: desk
                    .dispatcher
                    .agents()
                    .filter_map(|a| agent_view(desk, &a.id))
                    .collect(),
            }
        })))
    }

    async fn put_queue(&self, request: Request<pb::PutQueueRequest>) -> Result<Response<pb::Queue>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        let name = body.queue.clone();
        self.engine.run(&tenant, Command::PutQueue(body)).await?;
        self.read(&tenant, |desk| {
            desk.dispatcher.queue(&name).map(|q| queue_view(desk, q))
        })
        .map(Response::new)
        .ok_or_else(|| not_found("queue", &name))
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        Ok(Response::new(self.read(&tenant, |desk| pb::ListQueuesResponse {
            queues: desk.dispatcher.queues().map(|q| queue_view(desk, q)).collect(),
        })))
    }

    async fn set_presence(&self, request: Request<pb::SetPresenceRequest>) -> Result<Response<pb::Agent>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        required("agent_id", &body.agent_id)?;
        self.engine
            .run(
                &tenant,
                Command::SetPresence {
                    agent: body.agent_id.clone(),
                    presence: body.presence,
                },
            )
            .await?;
        self.agent(&tenant, &body.agent_id).map(Response::new)
    }

    async fn list_agent_conversations(
        &self,
        request: Request<pb::ListAgentConversationsRequest>,
    ) -> Result<Response<pb::ListAgentConversationsResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let agent = &request.get_ref().agent_id;
        self.read(&tenant, |desk| {
            let a = desk.dispatcher.agent(agent)?;
            Some(pb::ListAgentConversationsResponse {
                conversations: a
                    .offered
                    .iter()
                    .chain(a.assigned.iter())
                    .filter_map(|c| agent_conversation(desk, c))
                    .collect(),
            })
        })
        .map(Response::new)
        .ok_or_else(|| not_found("agent", agent))
    }

    async fn accept_offer(
        &self,
        request: Request<pb::OfferRequest>,
    ) -> Result<Response<pb::AgentConversation>, Status> {
        let tenant = tenant_of(&request)?;
        let pb::OfferRequest {
            agent_id,
            conversation_id,
        } = request.into_inner();
        self.known(&tenant, Some(&agent_id), Some(&conversation_id))?;
        self.engine
            .run(
                &tenant,
                Command::Accept {
                    agent: agent_id,
                    conversation: conversation_id.clone(),
                },
            )
            .await?;
        self.read(&tenant, |desk| agent_conversation(desk, &conversation_id))
            .map(Response::new)
            .ok_or_else(|| precondition(&format!("conversation {conversation_id} left the desk meanwhile")))
    }

    async fn reject_offer(&self, request: Request<pb::OfferRequest>) -> Result<Response<pb::RoutingStatus>, Status> {
        let tenant = tenant_of(&request)?;
        let pb::OfferRequest {
            agent_id,
            conversation_id,
        } = request.into_inner();
        self.known(&tenant, Some(&agent_id), Some(&conversation_id))?;
        self.engine
            .run(
                &tenant,
                Command::Reject {
                    agent: agent_id,
                    conversation: conversation_id.clone(),
                },
            )
            .await?;
        self.status(&tenant, &conversation_id).map(Response::new)
    }

    async fn reply(&self, request: Request<pb::ReplyRequest>) -> Result<Response<conv::Message>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        let command_id = command_id(&body.command_id)?;
        self.assigned_to(&tenant, &body.agent_id, &body.conversation_id)?;
        let post = conv::PostMessageRequest {
            command_id: format!("{COMMAND_PREFIX}reply-{command_id}"),
            conversation_id: body.conversation_id,
            role: "agent".into(),
            text: body.text,
            author_id: body.agent_id,
            ..Default::default()
        };
        self.conversations.clone().post_message(for_tenant(&tenant, post)).await
    }

    async fn add_note(&self, request: Request<pb::AddNoteRequest>) -> Result<Response<pb::NoteAdded>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        self.known(&tenant, Some(&body.agent_id), Some(&body.conversation_id))?;
        if body.text.chars().count() > MAX_NOTE_CHARS {
            return Err(invalid("text", &format!("must be 1 to {MAX_NOTE_CHARS} characters")));
        }
        let note_id = format!("note_{}", command_id(&body.command_id)?.replace('-', ""));
        self.engine
            .run(
                &tenant,
                Command::AddNote {
                    agent: body.agent_id,
                    conversation: body.conversation_id.clone(),
                    note_id: note_id.clone(),
                    text: body.text,
                },
            )
            .await?;
        self.read(&tenant, |desk| {
            desk.conversation(&body.conversation_id)?
                .notes
                .iter()
                .find(|n| n.id == note_id)
                .map(|n| pb::NoteAdded {
                    conversation_id: body.conversation_id.clone(),
                    note_id: n.id.clone(),
                    agent_id: n.agent_id.clone(),
                    text: n.text.clone(),
                    at_ms: n.at_ms,
                })
        })
        .map(Response::new)
        .ok_or_else(|| not_found("note", &note_id))
    }

    async fn list_notes(
        &self,
        request: Request<pb::ListNotesRequest>,
    ) -> Result<Response<pb::ListNotesResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let conversation = &request.get_ref().conversation_id;
        self.status(&tenant, conversation)?;
        Ok(Response::new(self.read(&tenant, |desk| {
            pb::ListNotesResponse {
                notes: desk
                    .conversation(conversation)
                    .map(|c| {
                        c.notes
                            .iter()
                            .map(|n| pb::NoteAdded {
                                conversation_id: conversation.clone(),
                                note_id: n.id.clone(),
                                agent_id: n.agent_id.clone(),
                                text: n.text.clone(),
                                at_ms: n.at_ms,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })))
    }

    async fn transfer(&self, request: Request<pb::TransferRequest>) -> Result<Response<pb::RoutingStatus>, Status> {
        use pb::transfer_request::To;
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        let by = (!body.agent_id.is_empty()).then_some(body.agent_id.as_str());
        self.known(&tenant, by, Some(&body.conversation_id))?;
        let to = match body.to {
            Some(To::Queue(queue)) => Destination::Queue {
                queue,
                skills: skills_from_proto(&body.skills),
            },
            Some(To::ToAgentId(agent)) => Destination::Agent(agent),
            Some(To::Bot(true)) => Destination::Bot,
            Some(To::Bot(false)) | None => return Err(invalid("to", "one of queue, to_agent_id or bot is required")),
        };
        self.engine
            .run(
                &tenant,
                Command::Transfer {
                    by: (!body.agent_id.is_empty()).then_some(body.agent_id),
                    conversation: body.conversation_id.clone(),
                    to,
                },
            )
            .await?;
        self.status(&tenant, &body.conversation_id).map(Response::new)
    }

    async fn resolve(&self, request: Request<pb::ResolveRequest>) -> Result<Response<conv::Conversation>, Status> {
        let tenant = tenant_of(&request)?;
        let body = request.into_inner();
        if let Err(refused) = self.assigned_to(&tenant, &body.agent_id, &body.conversation_id) {
            // A retried resolution after a lost answer: the conversation is resolved and off the
            // agent's desk already.
            if refused.code() == tonic::Code::FailedPrecondition
                && self.resolved_by(&tenant, &body.agent_id, &body.conversation_id)
            {
                return self
                    .conversations
                    .clone()
                    .get_conversation(for_tenant(
                        &tenant,
                        conv::GetConversationRequest {
                            conversation_id: body.conversation_id,
                        },
                    ))
                    .await;
            }
            return Err(refused);
        }
        let resolved = self
            .conversations
            .clone()
            .resolve_conversation(for_tenant(
                &tenant,
                conv::ConversationCommand {
                    command_id: format!("{COMMAND_PREFIX}resolve-{}", uuid::Uuid::now_v7().simple()),
                    conversation_id: body.conversation_id.clone(),
                },
            ))
            .await?;
        // The resolution also reaches the desk through the log; releasing here frees the
        // agent's capacity before this call answers.
        self.engine
            .run(
                &tenant,
                Command::Release {
                    agent: body.agent_id,
                    conversation: body.conversation_id,
                },
            )
            .await
            .or_else(|status| {
                if status.code() == tonic::Code::FailedPrecondition {
                    Ok(())
                } else {
                    Err(status)
                }
            })?;
        Ok(resolved)
    }

    async fn get_routing_status(
        &self,
        request: Request<pb::GetRoutingStatusRequest>,
    ) -> Result<Response<pb::RoutingStatus>, Status> {
        let tenant = tenant_of(&request)?;
        self.status(&tenant, &request.get_ref().conversation_id)
            .map(Response::new)
    }
}
