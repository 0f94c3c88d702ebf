//! Deciding and recording, one tenant at a time.
//!
//! Each tenant's desk has one task that takes its commands in turn: it decides a command
//! against the desk as the log has it, appends the events with the desk's last sequence
//! expected, waits until the desk includes them, then lets the dispatcher offer waiting
//! conversations to free agents and records that too. Because one task decides for the whole
//! desk, no agent is offered more than their capacity and no conversation goes to two agents;
//! because every decision is in the log before it counts, a restart rebuilds exactly this.
//!
//! The same task is the desk's clock: it sleeps until the next offer expires or the next
//! escalation threshold passes, both computed from the desk, so timers re-arm themselves after a
//! restart and overdue ones fire at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use yy_dispatch::{
    AgentProfile, Event, NewConversation, Presence, QueueConfig, Rejection, SkillRequirement, Status as Seat,
    TransferTarget,
};
use yy_eventlog::{
    AppendError, EventEnvelope, EventLog, Expected, Follower, LogContext, NewCommit, Payload, partition_of,
};
use yy_nlu::Analysis;
use yy_proto::routing::v1 as pb;
use yy_rules::Route;

use crate::conversations::{ConversationView, TenantView};
use crate::desk::{Desk, Desks, Escalation, EscalationAction, desk_id, tenant_analyzer};
use crate::errors::{invalid, precondition, rejected, unavailable};
use crate::events::{self, parse_presence, profile_from_proto, to_payload};
use crate::metrics::Metrics;
use crate::sync::Reconciler;
use crate::understanding::{self, MessageContext};

/// How often a command is decided again after another writer got to the desk first.
const MAX_ATTEMPTS: usize = 5;
/// How long a command waits for the desk to include its commit.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands queued per tenant before callers wait.
const MAILBOX: usize = 256;
/// The longest internal note, in characters.
pub const MAX_NOTE_CHARS: usize = 4_000;
/// The most escalation steps a queue may have.
const MAX_ESCALATION_STEPS: usize = 10;

/// How the service treats time and new queues.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How many seconds of queue time pass per real second, for escalation thresholds: 1 in
    /// production; more in tests and drills, so that a 10-minute threshold passes in seconds.
    pub time_scale: f64,
    /// The offer timeout of queues created on first use, and when a queue does not say.
    pub default_offer_timeout_ms: u64,
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A customer message to route, understood already (understanding needs no desk, so it runs
/// outside the desk's turn).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub conversation_id: String,
    pub message_id: String,
    pub position: u64,
    pub text: String,
    pub analysis: Analysis,
}

/// Where a transfer sends a conversation.
#[derive(Debug, Clone)]
pub enum Destination {
    Queue {
        queue: String,
        skills: Vec<SkillRequirement>,
    },
    Agent(String),
    Bot,
}

/// What a desk is asked to do.
#[derive(Debug, Clone)]
pub enum Command {
    PublishRules {
        json: String,
    },
    ConfigureIntents {
        json: String,
        extend_default: bool,
    },
    PutAgent {
        agent: String,
        profile: pb::AgentProfile,
    },
    PutQueue(pb::PutQueueRequest),
    SetPresence {
        agent: String,
        presence: String,
    },
    Accept {
        agent: String,
        conversation: String,
    },
    Reject {
        agent: String,
        conversation: String,
    },
    Transfer {
        by: Option<String>,
        conversation: String,
        to: Destination,
    },
    Release {
        agent: String,
        conversation: String,
    },
    /// The conversation was resolved, closed or handed back to the bot outside routing.
    Ended {
        conversation: String,
        reason: &'static str,
    },
    AddNote {
        agent: String,
        conversation: String,
        note_id: String,
        text: String,
    },
    /// An agent posted a message to a conversation, at `at_ms`.
    AgentReplied {
        agent: String,
        conversation: String,
        at_ms: i64,
    },
    Route(Box<Incoming>),
    /// Offers expired and escalation thresholds passed.
    Tick,
}

struct Job {
    command: Command,
    reply: oneshot::Sender<Result<(), Status>>,
}

/// What deciding a command produced.
#[derive(Default)]
struct Decided {
    payloads: Vec<Payload>,
    /// Conversations whose status in the conversation service may have to follow.
    touched: Vec<String>,
    /// Names the commit for deduplication; a fresh id when empty.
    command_id: String,
}

impl Decided {
    fn nothing() -> Self {
        Decided::default()
    }
}

/// The desks of every tenant, each deciding in its own task.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    desks: Follower<Desks>,
    view: Follower<ConversationView>,
    reconciler: Reconciler,
    settings: Settings,
    metrics: Metrics,
    mailboxes: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    shutdown: CancellationToken,
}

impl Engine {
    pub fn new(
        log: EventLog,
        desks: Follower<Desks>,
        view: Follower<ConversationView>,
        reconciler: Reconciler,
        settings: Settings,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                log,
                desks,
                view,
                reconciler,
                settings,
                metrics,
                mailboxes: Mutex::default(),
                shutdown,
            }),
        }
    }

    /// The desks, as the log has them.
    pub fn desks(&self) -> &Follower<Desks> {
        &self.inner.desks
    }

    /// The conversations, as their log has them.
    pub fn view(&self) -> &Follower<ConversationView> {
        &self.inner.view
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Starts the task of every desk the log has, so their timers run without waiting for a
    /// command, and brings every conversation they route in step with the conversation service.
    pub fn resume(&self) {
        let tenants: Vec<(String, Vec<String>)> = {
            let desks = self.inner.desks.read();
            desks
                .state
                .tenants()
                .map(|(tenant, desk)| {
                    (
                        tenant.to_owned(),
                        desk.dispatcher.conversations().map(|c| c.id.clone()).collect(),
                    )
                })
                .collect()
        };
        for (tenant, conversations) in tenants {
            // A crash may have come between a decision and the offers it made possible, or
            // past an offer's expiry: a tick settles both before anything new arrives.
            let engine = self.clone();
            let desk = tenant.clone();
            tokio::spawn(async move {
                if let Err(error) = engine.run(&desk, Command::Tick).await {
                    tracing::warn!(tenant = %desk, %error, "the desk could not catch up on start");
                }
            });
            for conversation in conversations {
                self.inner.reconciler.request(&tenant, &conversation);
            }
        }
    }

    /// Runs `command` on the tenant's desk; returns once its events are in the log and the desk.
    pub async fn run(&self, tenant: &str, command: Command) -> Result<(), Status> {
        let mailbox = self.mailbox(tenant);
        let (reply, answer) = oneshot::channel();
        mailbox
            .send(Job { command, reply })
            .await
            .map_err(|_| unavailable("the routing service is stopping"))?;
        answer
            .await
            .map_err(|_| unavailable("the routing service is stopping"))?
    }

    fn mailbox(&self, tenant: &str) -> mpsc::Sender<Job> {
        let mut mailboxes = self.inner.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = mailboxes.get(tenant).filter(|s| !s.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::channel(MAILBOX);
        mailboxes.insert(tenant.to_owned(), sender.clone());
        tokio::spawn(desk_task(self.inner.clone(), tenant.to_owned(), receiver));
        sender
    }
}

async fn desk_task(inner: Arc<Inner>, tenant: String, mut mailbox: mpsc::Receiver<Job>) {
    loop {
        let wake = inner.next_deadline(&tenant).map(|at_ms| {
            let wait = u64::try_from(at_ms.saturating_sub(now_ms())).unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_millis(wait)
        });
        let timer = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            job = mailbox.recv() => {
                let Some(job) = job else { return };
                let result = inner.execute(&tenant, job.command).await;
                let _ = job.reply.send(result);
            }
            _ = timer => {
                if let Err(error) = inner.execute(&tenant, Command::Tick).await {
                    tracing::warn!(%tenant, %error, "timers could not be recorded; trying again shortly");
                    tokio::select! {
                        _ = inner.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}

impl Inner {
    async fn execute(&self, tenant: &str, command: Command) -> Result<(), Status> {
        let now = now_ms();
        let settings = self.settings;
        let mut touched = self
            .decide_and_append(tenant, |desk, view| decide(desk, view, &command, now, settings))
            .await?;
        let offered = self
            .decide_and_append(tenant, |desk, _| Ok(dispatch(desk, now)))
            .await?;
        touched.extend(offered);
        touched.sort();
        touched.dedup();
        for conversation in touched {
            self.reconciler.request(tenant, &conversation);
        }
        Ok(())
    }

    /// Decides against the desk as the log has it and appends the outcome, deciding again when
    /// another writer got there first; returns the conversations touched once the desk has them.
    async fn decide_and_append(
        &self,
        tenant: &str,
        decide: impl Fn(&Desk, Option<&TenantView>) -> Result<Decided, Status>,
    ) -> Result<Vec<String>, Status> {
        let aggregate = desk_id(tenant);
        let partition = partition_of(&aggregate, self.log.config().partitions);
        for _ in 0..MAX_ATTEMPTS {
            let (decided, sequence) = {
                let desks = self.desks.read();
                let empty = Desk::default();
                let desk = desks.state.tenant(tenant).unwrap_or(&empty);
                let view = self.view.read();
                (decide(desk, view.state.tenant(tenant))?, desk.sequence)
            };
            if decided.payloads.is_empty() {
                return Ok(decided.touched);
            }
            let occurred_at = Some(timestamp(now_ms()));
            let command_id = if decided.command_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                decided.command_id.clone()
            };
            let events: Vec<EventEnvelope> = decided
                .payloads
                .into_iter()
                .map(|payload| EventEnvelope {
                    event_id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.to_owned(),
                    aggregate_type: "desk".to_owned(),
                    aggregate_id: aggregate.clone(),
                    occurred_at,
                    causation_id: command_id.clone(),
                    schema_version: 1,
                    payload: Some(payload),
                    ..Default::default()
                })
                .collect();
            let commit = NewCommit {
                context: LogContext::ROUTING,
                tenant_id: tenant.to_owned(),
                aggregate_id: aggregate.clone(),
                command_id,
                events,
                trace: None,
            };
            let expected = if sequence == 0 {
                Expected::NoStream
            } else {
                Expected::LastSequence(sequence)
            };
            let recorded: Vec<Payload> = commit.events.iter().filter_map(|e| e.payload.clone()).collect();
            match self.log.append(commit, expected).await {
                Ok(appended) => {
                    if !appended.duplicate {
                        self.metrics.recorded(&recorded);
                    }
                    self.wait_applied(appended.partition, appended.sequence).await?;
                    return Ok(decided.touched);
                }
                Err(AppendError::Conflict { .. }) => {
                    let (_, last) = self
                        .log
                        .load_after(LogContext::ROUTING, tenant, &aggregate, sequence)
                        .await
                        .map_err(unavailable)?;
                    self.wait_applied(partition, last).await?;
                }
                Err(AppendError::Empty) => return Ok(decided.touched),
                Err(AppendError::Log(error)) => return Err(unavailable(error)),
            }
        }
        Err(Status::aborted(
            "concurrent changes to the desk kept conflicting; retry",
        ))
    }

    async fn wait_applied(&self, partition: u32, sequence: u64) -> Result<(), Status> {
        tokio::time::timeout(APPLY_TIMEOUT, self.desks.applied(partition, sequence))
            .await
            .map_err(|_| unavailable("the desk did not apply a commit in time"))
    }

    /// When the desk must next act on its own: the soonest offer expiry or escalation threshold.
    fn next_deadline(&self, tenant: &str) -> Option<i64> {
        let desks = self.desks.read();
        let desk = desks.state.tenant(tenant)?;
        let offers = desk.dispatcher.next_expiry();
        let escalations = desk
            .dispatcher
            .conversations()
            .filter(|c| c.status == Seat::Waiting)
            .filter_map(|c| {
                let done = desk.conversations.get(&c.id).map(|r| &r.escalated);
                desk.escalations
                    .get(&c.queue)?
                    .iter()
                    .enumerate()
                    .find(|(i, _)| !done.is_some_and(|d| d.contains(&(*i as u32))))
                    .map(|(_, step)| c.enqueued_at_ms + queue_ms(step.after_secs, self.settings.time_scale))
            })
            .min();
        let responses = response_deadlines(desk, self.settings.time_scale)
            .map(|(_, _, due, _)| due)
            .min();
        offers.into_iter().chain(escalations).chain(responses).min()
    }
}

/// Real milliseconds for `secs` of queue time.
fn queue_ms(secs: u32, time_scale: f64) -> i64 {
    (f64::from(secs) * 1000.0 / time_scale).ceil() as i64
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn payloads(desk: &Desk, events: &[Event]) -> Vec<Payload> {
    events.iter().map(|e| to_payload(e, &desk.names, None)).collect()
}

fn conversations_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.conversation().map(str::to_owned))
        .collect()
}

/// The dispatcher's offers to free agents.
fn dispatch(desk: &Desk, now: i64) -> Decided {
    let events = desk.dispatcher.dispatch(now);
    Decided {
        payloads: payloads(desk, &events),
        touched: conversations_of(&events),
        command_id: String::new(),
    }
}

fn check_agent_id(agent: &str) -> Result<(), Status> {
    let ok = agent.strip_prefix("agt_").is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "agent_id",
            "must be \"agt_\" followed by 1 to 64 letters, digits, '_' or '-'",
        ))
    }
}

fn check_queue_name(field: &str, queue: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&queue.len())
        && queue
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be 1 to 64 characters of a-z, 0-9, '_' and '-'"))
    }
}

/// Queue settings for a queue a rule names before anyone configured it.
fn default_queue(queue: &str, settings: Settings) -> Payload {
    Payload::QueueConfigured(pb::QueueConfigured {
        queue: queue.to_owned(),
        strategy: "least_busy".into(),
        offer_timeout_ms: settings.default_offer_timeout_ms,
        ..Default::default()
    })
}

fn decide(
    desk: &Desk,
    view: Option<&TenantView>,
    command: &Command,
    now: i64,
    settings: Settings,
) -> Result<Decided, Status> {
    let dispatcher = &desk.dispatcher;
    let simple = |events: Vec<Event>| Decided {
        payloads: payloads(desk, &events),
        touched: conversations_of(&events),
        command_id: String::new(),
    };
    match command {
        Command::PublishRules { json } => {
            let rules = yy_rules::RuleSet::parse(json).map_err(|errors| {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                invalid("rules", &list.join("; "))
            })?;
            let (_, current) = desk.rules();
            if rules.version() <= current {
                return Err(invalid(
                    "rules.version",
                    &format!("must be greater than the version in force, {current}"),
                ));
            }
            Ok(Decided {
                payloads: vec![Payload::RulesPublished(pb::RulesPublished {
                    version: rules.version(),
                    rules_json: json.clone(),
                })],
                ..Decided::default()
            })
        }
        Command::ConfigureIntents { json, extend_default } => {
            tenant_analyzer(json, *extend_default).map_err(|e| invalid("intents", &e))?;
            Ok(Decided {
                payloads: vec![Payload::IntentsConfigured(pb::IntentsConfigured {
                    intents_json: json.clone(),
                    extend_default: *extend_default,
                })],
                ..Decided::default()
            })
        }
        Command::PutAgent { agent, profile } => {
            check_agent_id(agent)?;
            if profile.name.chars().count() > 200 {
                return Err(invalid("profile.name", "at most 200 characters"));
            }
            let parsed: AgentProfile = profile_from_proto(profile);
            let events = if dispatcher.agent(agent).is_some() {
                dispatcher.update_agent(agent, parsed.clone(), now).map_err(rejected)?
            } else {
                dispatcher.register_agent(agent, parsed.clone()).map_err(rejected)?
            };
            let mut names = desk.names.clone();
            names.insert(agent.clone(), profile.name.clone());
            let mut payloads: Vec<Payload> = events.iter().map(|e| to_payload(e, &names, None)).collect();
            let renamed = desk.names.get(agent).is_some_and(|n| n != &profile.name);
            if events.is_empty() && renamed {
                payloads.push(Payload::AgentUpdated(pb::AgentUpdated {
                    agent_id: agent.clone(),
                    profile: Some(events::profile_to_proto(&profile.name, &parsed)),
                }));
            }
            Ok(Decided {
                payloads,
                touched: conversations_of(&events),
                command_id: String::new(),
            })
        }
        Command::PutQueue(request) => decide_queue(desk, request, settings),
        Command::SetPresence { agent, presence } => {
            let presence: Presence =
                parse_presence(presence).ok_or_else(|| invalid("presence", "must be online, away or offline"))?;
            Ok(simple(dispatcher.set_presence(agent, presence, now).map_err(rejected)?))
        }
        Command::Accept { agent, conversation } => {
            Ok(simple(dispatcher.accept(conversation, agent, now).map_err(rejected)?))
        }
        Command::Reject { agent, conversation } => {
            Ok(simple(dispatcher.reject(conversation, agent, now).map_err(rejected)?))
        }
        Command::Release { agent, conversation } => {
            Ok(simple(dispatcher.release(agent, conversation, now).map_err(rejected)?))
        }
        Command::Transfer { by, conversation, to } => decide_transfer(desk, view, by.as_deref(), conversation, to, now),
        Command::Ended { conversation, reason } => {
            let events = match dispatcher.conversation(conversation).map(|c| &c.status) {
                Some(Seat::Assigned { agent, .. }) if *reason != "to_bot" => {
                    dispatcher.release(agent, conversation, now).map_err(rejected)?
                }
                Some(_) => dispatcher.remove(conversation, now),
                None => return Ok(Decided::nothing()),
            };
            let mut decided = simple(events);
            for payload in &mut decided.payloads {
                if let Payload::ConversationDequeued(dequeued) = payload {
                    dequeued.reason = (*reason).to_owned();
                }
            }
            Ok(decided)
        }
        Command::AddNote {
            agent,
            conversation,
            note_id,
            text,
        } => {
            if view.and_then(|v| v.conversation(conversation)).is_none() {
                return Err(crate::errors::not_found("conversation", conversation));
            }
            if desk
                .conversation(conversation)
                .is_some_and(|c| c.notes.iter().any(|n| &n.id == note_id))
            {
                return Ok(Decided::nothing());
            }
            let chars = text.trim().chars().count();
            if chars == 0 || text.chars().count() > MAX_NOTE_CHARS {
                return Err(invalid("text", &format!("must be 1 to {MAX_NOTE_CHARS} characters")));
            }
            Ok(Decided {
                payloads: vec![Payload::NoteAdded(pb::NoteAdded {
                    conversation_id: conversation.clone(),
                    note_id: note_id.clone(),
                    agent_id: agent.clone(),
                    text: text.clone(),
                    at_ms: now,
                })],
                ..Decided::default()
            })
        }
        Command::AgentReplied {
            agent,
            conversation,
            at_ms,
        } => Ok(decide_reply(desk, agent, conversation, *at_ms, settings)),
        Command::Route(incoming) => Ok(decide_route(desk, view, incoming, now, settings)),
        Command::Tick => Ok(decide_tick(desk, now, settings)),
    }
}

fn decide_queue(desk: &Desk, request: &pb::PutQueueRequest, settings: Settings) -> Result<Decided, Status> {
    check_queue_name("queue", &request.queue)?;
    let strategy = events::parse_strategy(&request.strategy)
        .ok_or_else(|| invalid("strategy", "must be least_busy or round_robin"))?;
    let offer_timeout_ms = if request.offer_timeout_ms == 0 {
        settings.default_offer_timeout_ms
    } else {
        request.offer_timeout_ms
    };
    if request.escalation.len() > MAX_ESCALATION_STEPS {
        return Err(invalid("escalation", &format!("at most {MAX_ESCALATION_STEPS} steps")));
    }
    let mut steps = Vec::new();
    for (i, step) in request.escalation.iter().enumerate() {
        let field = format!("escalation[{i}]");
        let parsed = Escalation::from_proto(step).ok_or_else(|| {
            invalid(
                &field,
                "needs one of raise_priority_to, overflow_to_queue, hold_message",
            )
        })?;
        if parsed.after_secs == 0 {
            return Err(invalid(&format!("{field}.after_secs"), "must be at least 1"));
        }
        match &parsed.action {
            EscalationAction::RaisePriorityTo(p) if !(1..=10).contains(p) => {
                return Err(invalid(&format!("{field}.raise_priority_to"), "must be 1 to 10"));
            }
            EscalationAction::OverflowTo(queue) => {
                check_queue_name(&format!("{field}.overflow_to_queue"), queue)?;
                if queue == &request.queue {
                    return Err(invalid(&format!("{field}.overflow_to_queue"), "must be another queue"));
                }
                if desk.dispatcher.queue(queue).is_none() {
                    return Err(invalid(
                        &format!("{field}.overflow_to_queue"),
                        &format!("queue {queue} does not exist"),
                    ));
                }
            }
            EscalationAction::HoldMessage(text) if text.trim().is_empty() || text.chars().count() > 1000 => {
                return Err(invalid(
                    &format!("{field}.hold_message"),
                    "must be 1 to 1000 characters",
                ));
            }
            _ => {}
        }
        steps.push(parsed);
    }
    let config = QueueConfig {
        strategy,
        offer_timeout_ms,
        sla: yy_dispatch::Sla {
            first_response_secs: (request.first_response_secs > 0).then_some(request.first_response_secs),
            max_wait_secs: (request.max_wait_secs > 0).then_some(request.max_wait_secs),
        },
    };
    // Validates the settings; its event is replaced by the fuller one below.
    desk.dispatcher
        .configure_queue(&request.queue, config)
        .map_err(rejected)?;
    steps.sort_by_key(|s| s.after_secs);
    let unchanged = desk
        .dispatcher
        .queue(&request.queue)
        .is_some_and(|q| q.config == config)
        && desk.escalations.get(&request.queue).is_some_and(|s| *s == steps);
    if unchanged {
        return Ok(Decided::nothing());
    }
    Ok(Decided {
        payloads: vec![Payload::QueueConfigured(pb::QueueConfigured {
            queue: request.queue.clone(),
            strategy: events::strategy_name(strategy).to_owned(),
            offer_timeout_ms,
            first_response_secs: request.first_response_secs,
            max_wait_secs: request.max_wait_secs,
            escalation: steps.iter().map(Escalation::to_proto).collect(),
        })],
        ..Decided::default()
    })
}

fn decide_transfer(
    desk: &Desk,
    view: Option<&TenantView>,
    by: Option<&str>,
    conversation: &str,
    to: &Destination,
    now: i64,
) -> Result<Decided, Status> {
    let dispatcher = &desk.dispatcher;
    let current = dispatcher.conversation(conversation);
    if let (Some(agent), Some(seat)) = (by, current)
        && seat.status.agent() != Some(agent)
    {
        return Err(precondition(&format!(
            "conversation {conversation} is not with agent {agent}"
        )));
    }
    let events = match (to, current) {
        (Destination::Bot, Some(_)) => {
            let mut decided = Decided {
                payloads: payloads(desk, &dispatcher.remove(conversation, now)),
                touched: vec![conversation.to_owned()],
                command_id: String::new(),
            };
            for payload in &mut decided.payloads {
                if let Payload::ConversationDequeued(dequeued) = payload {
                    dequeued.reason = "to_bot".into();
                }
            }
            return Ok(decided);
        }
        (Destination::Bot, None) => return Ok(Decided::nothing()),
        (Destination::Queue { queue, skills }, Some(_)) => dispatcher
            .transfer(
                conversation,
                TransferTarget::Queue {
                    queue: queue.clone(),
                    skills: skills.clone(),
                },
                now,
            )
            .map_err(rejected)?,
        (Destination::Agent(agent), Some(_)) => dispatcher
            .transfer(conversation, TransferTarget::Agent { agent: agent.clone() }, now)
            .map_err(rejected)?,
        (Destination::Queue { queue, skills }, None) => {
            // A conversation with the bot moved to a queue by a person: a handoff like any other.
            let info = view
                .and_then(|v| v.conversation(conversation))
                .ok_or_else(|| crate::errors::not_found("conversation", conversation))?;
            if dispatcher.queue(queue).is_none() {
                return Err(rejected(Rejection::UnknownQueue { queue: queue.clone() }));
            }
            let handoff = handoff_context(info, None, "transfer");
            let events = dispatcher
                .enqueue(
                    NewConversation {
                        id: conversation.to_owned(),
                        queue: queue.clone(),
                        priority: 5,
                        channel: info.channel.clone(),
                        skills: skills.clone(),
                        languages: Vec::new(),
                    },
                    now,
                )
                .map_err(rejected)?;
            return Ok(Decided {
                payloads: events
                    .iter()
                    .map(|e| to_payload(e, &desk.names, Some(&handoff)))
                    .collect(),
                touched: vec![conversation.to_owned()],
                command_id: String::new(),
            });
        }
        (Destination::Agent(_), None) => {
            return Err(precondition(&format!(
                "conversation {conversation} is with the bot; transfer it to a queue first"
            )));
        }
    };
    Ok(Decided {
        payloads: payloads(desk, &events),
        touched: conversations_of(&events),
        command_id: String::new(),
    })
}

fn understanding_of(analysis: &Analysis) -> pb::Understanding {
    pb::Understanding {
        language: match analysis.language {
            yy_nlu::Language::Zh => "zh",
            yy_nlu::Language::En => "en",
            yy_nlu::Language::Mixed => "mixed",
            yy_nlu::Language::Unknown => "unknown",
        }
        .into(),
        intents: analysis
            .intents
            .top
            .iter()
            .map(|(name, confidence)| pb::IntentScore {
                name: name.clone(),
                confidence: *confidence,
            })
            .collect(),
        fallback: analysis.intents.fallback,
        ambiguous: analysis.intents.ambiguous,
        sentiment: analysis.sentiment.score,
        sentiment_label: match analysis.sentiment.label {
            yy_nlu::SentimentLabel::Negative => "negative",
            yy_nlu::SentimentLabel::Neutral => "neutral",
            yy_nlu::SentimentLabel::Positive => "positive",
        }
        .into(),
        entities: analysis
            .entities
            .iter()
            .map(|e| {
                let kind = serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{kind}:{}", e.value)
            })
            .collect(),
    }
}

pub fn understanding(analysis: &Analysis) -> pb::Understanding {
    understanding_of(analysis)
}

fn handoff_context(
    info: &crate::conversations::ConversationInfo,
    understanding: Option<pb::Understanding>,
    reason: &str,
) -> pb::ConversationQueued {
    pb::ConversationQueued {
        reason: reason.to_owned(),
        recent_messages: info
            .recent
            .iter()
            .map(|m| pb::RecentMessage {
                role: m.role.clone(),
                text: m.text.clone(),
                at_ms: m.at_ms,
            })
            .collect(),
        understanding,
        ..Default::default()
    }
}

fn decide_route(desk: &Desk, view: Option<&TenantView>, incoming: &Incoming, now: i64, settings: Settings) -> Decided {
    let conversation_id = &incoming.conversation_id;
    let routing = desk.conversation(conversation_id);
    if routing.is_some_and(|r| r.routed_position >= incoming.position) {
        return Decided::nothing();
    }
    let Some(info) = view.and_then(|v| v.conversation(conversation_id)) else {
        return Decided::nothing();
    };
    use yy_proto::conversation::v1::ConversationStatus as Cs;
    if matches!(info.status(), Cs::Resolved | Cs::Closed) {
        return Decided::nothing();
    }
    let seat = desk.dispatcher.conversation(conversation_id);
    let state = match seat.map(|c| &c.status) {
        None => "bot",
        Some(Seat::Waiting) => "waiting",
        Some(Seat::Offered { .. }) => "offered",
        Some(Seat::Assigned { .. }) => "assigned",
    };
    if matches!(state, "offered" | "assigned") {
        // A person has it: what the customer writes is theirs to answer, not routing's.
        return Decided::nothing();
    }
    let (rules, version) = desk.rules();
    let context = MessageContext {
        channel: info.channel.clone(),
        contact_attributes: view
            .map(|v| v.contact_attributes(&info.contact_id))
            .unwrap_or_default()
            .into_iter()
            .collect(),
        now: now.div_euclid(1000),
        waiting_seconds: seat.map(|c| {
            let real = u64::try_from(now.saturating_sub(c.enqueued_at_ms)).unwrap_or(0);
            (real as f64 * settings.time_scale / 1000.0) as u64
        }),
        previous_low_confidence: routing.map_or(0, |r| r.low_confidence_streak),
    };
    let facts = understanding::facts(&incoming.analysis, &incoming.text, &context);
    let decision = rules.decide(&facts);
    let understood = understanding_of(&incoming.analysis);
    let action = &decision.action;
    let mut tags = action.add_tags.clone();
    if action.escalate && !tags.iter().any(|t| t == "escalated") {
        tags.push("escalated".into());
    }
    let (route, target) = match &action.route {
        Route::Bot => ("bot", None),
        Route::Queue(target) => ("queue", Some(target)),
    };
    let mut payloads = vec![Payload::MessageRouted(pb::MessageRouted {
        conversation_id: conversation_id.clone(),
        message_id: incoming.message_id.clone(),
        message_position: incoming.position,
        understanding: Some(understood.clone()),
        rules_version: version,
        rule_name: decision.rule_name.to_string(),
        route: route.into(),
        queue: target.map(|t| t.queue.clone()).unwrap_or_default(),
        priority: target.map_or(0, |t| u32::from(t.priority)),
        skills: target
            .map(|t| {
                t.skills
                    .iter()
                    .map(|s| pb::SkillRequirement {
                        name: s.name.clone(),
                        min_level: u32::from(s.min_level),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        add_tags: tags,
        escalate: action.escalate,
        explanation_json: serde_json::to_string(&decision).unwrap_or_default(),
        low_confidence_streak: facts.consecutive_low_confidence,
        state: state.into(),
    })];
    let mut touched = vec![conversation_id.clone()];
    if let Some(target) = target {
        match seat {
            None => {
                if desk.dispatcher.queue(&target.queue).is_none() {
                    payloads.push(default_queue(&target.queue, settings));
                }
                let reason = if facts.handoff_requested {
                    "customer_request"
                } else if facts.consecutive_low_confidence >= 2 {
                    "low_confidence"
                } else if facts.sentiment_label == Some(yy_rules::SentimentLabel::Negative) {
                    "negative_sentiment"
                } else {
                    "rule"
                };
                let handoff = handoff_context(info, Some(understood), reason);
                let languages = target
                    .languages
                    .iter()
                    .filter_map(|l| serde_json::to_value(l).ok()?.as_str().map(str::to_owned))
                    .collect::<Vec<_>>();
                let new = NewConversation {
                    id: conversation_id.clone(),
                    queue: target.queue.clone(),
                    priority: target.priority,
                    channel: info.channel.clone(),
                    skills: target
                        .skills
                        .iter()
                        .map(|s| SkillRequirement::new(s.name.clone(), s.min_level))
                        .collect(),
                    languages: events::sorted(&languages),
                };
                let enqueued = if desk.dispatcher.queue(&target.queue).is_some() {
                    desk.dispatcher.enqueue(new, now)
                } else {
                    // The queue is created by this very commit: enqueue against a desk that has it.
                    let mut staged = desk.dispatcher.clone();
                    staged.apply(&Event::QueueConfigured {
                        queue: target.queue.clone(),
                        config: QueueConfig::new(yy_dispatch::Strategy::LeastBusy, settings.default_offer_timeout_ms),
                    });
                    staged.enqueue(new, now)
                };
                match enqueued {
                    Ok(events) => payloads.extend(events.iter().map(|e| to_payload(e, &desk.names, Some(&handoff)))),
                    Err(rejection) => {
                        tracing::warn!(%rejection, conversation = %conversation_id, "a routing decision could not be queued")
                    }
                }
            }
            Some(current) if target.priority > current.priority => {
                if let Ok(events) = desk.dispatcher.set_priority(conversation_id, target.priority, now) {
                    payloads.extend(events.iter().map(|e| to_payload(e, &desk.names, None)));
                }
            }
            Some(_) => {}
        }
    }
    touched.dedup();
    Decided {
        payloads,
        touched,
        command_id: format!("route-{}", incoming.message_id),
    }
}

/// The first answer of the assigned agent, measured against the queue's target.
fn decide_reply(desk: &Desk, agent: &str, conversation: &str, at_ms: i64, settings: Settings) -> Decided {
    let Some(seat) = desk.dispatcher.conversation(conversation) else {
        return Decided::nothing();
    };
    let Seat::Assigned {
        agent: assigned,
        assigned_at_ms,
    } = &seat.status
    else {
        return Decided::nothing();
    };
    if assigned != agent || desk.conversation(conversation).is_some_and(|c| c.responded) {
        return Decided::nothing();
    }
    let target_secs = first_response_target(desk, &seat.queue);
    let response_ms = at_ms.saturating_sub(*assigned_at_ms).max(0);
    Decided {
        payloads: vec![Payload::FirstResponded(pb::FirstResponded {
            conversation_id: conversation.to_owned(),
            agent_id: agent.to_owned(),
            queue: seat.queue.clone(),
            at_ms,
            response_ms,
            target_secs,
            within_target: target_secs == 0 || response_ms <= queue_ms(target_secs, settings.time_scale),
        })],
        ..Decided::default()
    }
}

fn first_response_target(desk: &Desk, queue: &str) -> u32 {
    desk.dispatcher
        .queue(queue)
        .and_then(|q| q.config.sla.first_response_secs)
        .unwrap_or(0)
}

/// Assigned conversations still unanswered and when their first-response target passes.
fn response_deadlines(
    desk: &Desk,
    time_scale: f64,
) -> impl Iterator<Item = (&yy_dispatch::Conversation, &str, i64, u32)> {
    desk.dispatcher.conversations().filter_map(move |c| {
        let Seat::Assigned { agent, assigned_at_ms } = &c.status else {
            return None;
        };
        let routing = desk.conversation(&c.id);
        if routing.is_some_and(|r| r.responded || r.response_overdue) {
            return None;
        }
        let target = first_response_target(desk, &c.queue);
        (target > 0).then(|| (c, agent.as_str(), assigned_at_ms + queue_ms(target, time_scale), target))
    })
}

fn decide_tick(desk: &Desk, now: i64, settings: Settings) -> Decided {
    let dispatcher = &desk.dispatcher;
    let mut events: Vec<Event> = Vec::new();
    let expired: Vec<(String, String)> = dispatcher
        .pending_offers()
        .take_while(|(at, _, _)| *at <= now)
        .map(|(_, c, a)| (c.to_owned(), a.to_owned()))
        .collect();
    for (conversation, agent) in &expired {
        events.extend(dispatcher.offer_expired(conversation, agent, now));
    }
    let mut payloads = payloads(desk, &events);
    let mut touched = conversations_of(&events);
    // Escalations act on the desk before this tick's expiries; they touch waiting conversations
    // only, which expiries do not change but return to waiting, so both are decided on the same
    // desk and the later tick takes the rest.
    for conversation in dispatcher.conversations().filter(|c| c.status == Seat::Waiting) {
        let Some(steps) = desk.escalations.get(&conversation.queue) else {
            continue;
        };
        let done = desk.conversations.get(&conversation.id).map(|r| &r.escalated);
        let waited_ms = now.saturating_sub(conversation.enqueued_at_ms);
        let waited_secs = (waited_ms as f64 * settings.time_scale / 1000.0) as u64;
        for (i, step) in steps.iter().enumerate() {
            let index = i as u32;
            if done.is_some_and(|d| d.contains(&index)) || waited_ms < queue_ms(step.after_secs, settings.time_scale) {
                continue;
            }
            payloads.push(Payload::SlaEscalated(pb::SlaEscalated {
                conversation_id: conversation.id.clone(),
                queue: conversation.queue.clone(),
                step: index,
                action: Some(step.to_proto()),
                waited_secs,
                at_ms: now,
            }));
            touched.push(conversation.id.clone());
            let followed = match &step.action {
                EscalationAction::RaisePriorityTo(p) if *p > conversation.priority => {
                    dispatcher.set_priority(&conversation.id, *p, now).unwrap_or_default()
                }
                EscalationAction::OverflowTo(queue) => dispatcher
                    .transfer(
                        &conversation.id,
                        TransferTarget::Queue {
                            queue: queue.clone(),
                            skills: conversation.skills.clone(),
                        },
                        now,
                    )
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let overflowed = matches!(step.action, EscalationAction::OverflowTo(_)) && !followed.is_empty();
            payloads.extend(followed.iter().map(|e| to_payload(e, &desk.names, None)));
            if overflowed {
                // It waits in another queue now, whose own steps apply from the move.
                break;
            }
        }
    }
    for (conversation, agent, due, target_secs) in response_deadlines(desk, settings.time_scale) {
        if due <= now {
            payloads.push(Payload::FirstResponseOverdue(pb::FirstResponseOverdue {
                conversation_id: conversation.id.clone(),
                agent_id: agent.to_owned(),
                queue: conversation.queue.clone(),
                target_secs,
                at_ms: now,
            }));
        }
    }
    Decided {
        payloads,
        touched,
        command_id: String::new(),
    }
}
