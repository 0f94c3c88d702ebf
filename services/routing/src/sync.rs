//! Keeping the conversation service in step with the desks.
//!
//! Routing never writes the conversation log; it asks the conversation service, over gRPC, to
//! record what the desk decided: a conversation waiting or offered is QUEUED, one assigned is
//! ASSIGNED to its agent, one handed back is BOT; tags a rule added are added; a hold message
//! owed to a waiting customer is posted. Each request compares the desk with the conversation as
//! its log has it and asks only for the difference, so it can run any number of times: after
//! every decision, and for every routed conversation when the service starts (which repairs
//! whatever a crash between a decision and its request left undone). Requests for one
//! conversation run one at a time, the latest state winning; failures retry with backoff.
//!
//! Commands sent from here carry ids starting with [`COMMAND_PREFIX`], which the conversation
//! service records as the causation of its events, so routing recognises its own changes when
//! they come back through the log.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use yy_dispatch::Status as Seat;
use yy_eventlog::Follower;
use yy_proto::conversation::v1::conversation_service_client::ConversationServiceClient;
use yy_proto::conversation::v1::{self as conv, ConversationStatus};

use yy_runtime::for_tenant;

use crate::conversations::ConversationView;
use crate::desk::Desks;

/// The prefix of the command ids of every request routing makes of the conversation service.
pub const COMMAND_PREFIX: &str = "routing-";

/// Requests to the conversation service that bring conversations in step with the desks.
#[derive(Clone)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

struct Inner {
    desks: Follower<Desks>,
    view: Follower<ConversationView>,
    client: ConversationServiceClient<Channel>,
    /// Tenant/conversation → whether it changed again while a request for it was running.
    running: Mutex<HashMap<(String, String), bool>>,
    /// Hold messages posted by this process (the command id makes a repeat harmless; this
    /// only saves the call).
    posted: Mutex<HashSet<String>>,
    shutdown: CancellationToken,
}

/// What the conversation should look like and what it lacks.
#[derive(Debug, Default)]
struct Difference {
    status: Option<(ConversationStatus, String, i32)>,
    tags: Vec<String>,
    holds: Vec<(String, String)>,
}

/// The conversation API's priority for a queue priority (1 to 10).
fn conversation_priority(priority: u8) -> i32 {
    use conv::Priority;
    (match priority {
        9.. => Priority::Urgent,
        7..=8 => Priority::High,
        4..=6 => Priority::Normal,
        _ => Priority::Low,
    }) as i32
}

impl Reconciler {
    pub fn new(
        desks: Follower<Desks>,
        view: Follower<ConversationView>,
        client: ConversationServiceClient<Channel>,
        shutdown: CancellationToken,
    ) -> Self {
        Reconciler {
            inner: Arc::new(Inner {
                desks,
                view,
                client,
                running: Mutex::default(),
                posted: Mutex::default(),
                shutdown,
            }),
        }
    }

    /// Brings one conversation in step, now or right after the request already running for it.
    pub fn request(&self, tenant: &str, conversation: &str) {
        let key = (tenant.to_owned(), conversation.to_owned());
        {
            let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(changed) = running.get_mut(&key) {
                *changed = true;
                return;
            }
            running.insert(key.clone(), false);
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match inner.sync(&key.0, &key.1).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
                        if running.get(&key) == Some(&true) {
                            running.insert(key.clone(), false);
                            continue;
                        }
                        running.remove(&key);
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(tenant = %key.0, conversation = %key.1, %error, "conversation not updated yet; retrying");
                        tokio::select! {
                            _ = inner.shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }
}

impl Inner {
    fn difference(&self, tenant: &str, conversation: &str) -> Difference {
        let desks = self.desks.read();
        let view = self.view.read();
        let (Some(desk), Some(info)) = (
            desks.state.tenant(tenant),
            view.state.tenant(tenant).and_then(|v| v.conversation(conversation)),
        ) else {
            return Difference::default();
        };
        let current = info.status();
        if matches!(current, ConversationStatus::Resolved | ConversationStatus::Closed) {
            // Resolved outside routing; the desk lets it go when that reaches it.
            return Difference::default();
        }
        let routing = desk.conversation(conversation);
        let desired = match desk.dispatcher.conversation(conversation) {
            Some(seat) => match &seat.status {
                Seat::Waiting | Seat::Offered { .. } => Some((
                    ConversationStatus::Queued,
                    String::new(),
                    conversation_priority(seat.priority),
                )),
                Seat::Assigned { agent, .. } => Some((
                    ConversationStatus::Assigned,
                    agent.clone(),
                    conversation_priority(seat.priority),
                )),
            },
            None if routing.is_some_and(|r| r.left == "to_bot") => Some((ConversationStatus::Bot, String::new(), 0)),
            None => None,
        };
        let status = desired.filter(|(status, agent, priority)| {
            *status != current || *agent != info.agent_id || (*priority != 0 && *priority != info.priority)
        });
        let tags = routing
            .map(|r| {
                r.tags
                    .iter()
                    .flat_map(|(_, tags)| tags.iter())
                    .filter(|t| !info.tags.contains(t))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        let holds = routing
            .map(|r| {
                r.hold_messages
                    .iter()
                    .filter(|(id, _)| !posted.contains(id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Difference { status, tags, holds }
    }

    async fn sync(&self, tenant: &str, conversation: &str) -> Result<(), tonic::Status> {
        let difference = self.difference(tenant, conversation);
        let mut client = self.client.clone();
        let request = |message| for_tenant(tenant, message);
        if difference.status.is_some() || !difference.tags.is_empty() {
            let (status, agent_id, priority) = difference.status.unwrap_or_default();
            let update = conv::UpdateConversationRequest {
                command_id: format!("{COMMAND_PREFIX}{}", uuid::Uuid::now_v7()),
                conversation_id: conversation.to_owned(),
                status: status as i32,
                agent_id,
                priority,
                add_tags: difference.tags,
                ..Default::default()
            };
            match client.update_conversation(request(update)).await {
                Ok(_) => {}
                // Resolved or closed meanwhile: nothing left to bring in step.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
                Err(status) => return Err(status),
            }
        }
        for (id, text) in difference.holds {
            let post = conv::PostMessageRequest {
                command_id: format!("{COMMAND_PREFIX}{id}"),
                conversation_id: conversation.to_owned(),
                role: "system".into(),
                text,
                ..Default::default()
            };
            match client.post_message(for_tenant(tenant, post)).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {}
                Err(status) => return Err(status),
            }
            self.posted.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
        }
        Ok(())
    }
}
