//! The dispatcher's state and how events fold into it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::model::{AgentProfile, Presence, QueueConfig, SkillRequirement, TransferTarget};

/// How many recent assignment times a queue keeps for its wait estimate.
pub const THROUGHPUT_WINDOW: usize = 20;

/// An agent as the dispatcher sees it.
///
/// Invariants: `load` holds, per channel, exactly the number of conversations in `assigned` and
/// `offered` on that channel (channels with none are absent); `assigned` and `offered` are
/// disjoint; every conversation in them names this agent in its [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's id.
    pub id: String,
    /// Skills, languages, capacity, queues.
    pub profile: AgentProfile,
    /// Whether they take conversations now.
    pub presence: Presence,
    /// When a conversation was last assigned to or released by them (also by a removal or a
    /// transfer away); `None` until the first. The least-busy strategy prefers the oldest.
    pub last_activity_ms: Option<i64>,
    /// Conversations assigned to them.
    pub assigned: BTreeSet<String>,
    /// Conversations offered to them and not yet accepted.
    pub offered: BTreeSet<String>,
    /// Channel → assigned plus offered conversations on it.
    pub load: BTreeMap<String, u32>,
}

impl Agent {
    fn new(id: &str, profile: AgentProfile) -> Self {
        Agent {
            id: id.to_owned(),
            profile,
            presence: Presence::Offline,
            last_activity_ms: None,
            assigned: BTreeSet::new(),
            offered: BTreeSet::new(),
            load: BTreeMap::new(),
        }
    }

    /// Conversations assigned and offered on `channel`.
    pub fn load_on(&self, channel: &str) -> u32 {
        self.load.get(channel).copied().unwrap_or(0)
    }

    /// How many more conversations on `channel` may be offered to them now.
    pub fn free_on(&self, channel: &str) -> u32 {
        self.profile.capacity_on(channel).saturating_sub(self.load_on(channel))
    }

    /// Conversations assigned and offered, all channels.
    pub fn total_load(&self) -> u64 {
        self.load.values().map(|&l| u64::from(l)).sum()
    }

    fn add_load(&mut self, channel: &str) {
        let load = self.load.entry(channel.to_owned()).or_insert(0);
        *load = load.saturating_add(1);
    }

    fn remove_load(&mut self, channel: &str) {
        if let Some(load) = self.load.get_mut(channel) {
            *load = load.saturating_sub(1);
            if *load == 0 {
                self.load.remove(channel);
            }
        }
    }
}

/// Where a conversation is in its routing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting in its queue.
    Waiting,
    /// Offered to one agent, who has until `expires_at_ms` to accept.
    Offered {
        /// The agent.
        agent: String,
        /// When it was offered.
        offered_at_ms: i64,
        /// When the offer expires.
        expires_at_ms: i64,
        /// Made by a transfer to this agent, not by the queue's strategy.
        direct: bool,
    },
    /// Assigned to an agent.
    Assigned {
        /// The agent.
        agent: String,
        /// When it was accepted.
        assigned_at_ms: i64,
    },
}

impl Status {
    /// The agent it is offered or assigned to.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Status::Waiting => None,
            Status::Offered { agent, .. } | Status::Assigned { agent, .. } => Some(agent),
        }
    }
}

/// A conversation the dispatcher routes, from enqueue until release or removal.
///
/// Invariants: its queue exists; it is in its queue's waiting order exactly when it is
/// [`Status::Waiting`]; an agent it names in its status exists and lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The conversation's id.
    pub id: String,
    /// The queue it waits (or waited) in.
    pub queue: String,
    /// Higher is served first.
    pub priority: u8,
    /// Its channel.
    pub channel: String,
    /// Skills the agent needs, sorted by name.
    pub skills: Vec<SkillRequirement>,
    /// The agent must speak one of these; empty: any.
    pub languages: Vec<String>,
    /// When it started waiting in its queue.
    pub enqueued_at_ms: i64,
    /// Where it is.
    pub status: Status,
    /// Agent → how many offers of it they rejected or let expire, since it entered its queue.
    pub declines: BTreeMap<String, u32>,
}

impl Conversation {
    pub(crate) fn wait_key(&self) -> WaitKey {
        WaitKey {
            priority: Reverse(self.priority),
            enqueued_at_ms: self.enqueued_at_ms,
            conversation: self.id.clone(),
        }
    }
}

/// The order of waiting conversations: higher priority, then earlier enqueue, then conversation
/// id, so the order is total and the same on every replay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WaitKey {
    pub(crate) priority: Reverse<u8>,
    pub(crate) enqueued_at_ms: i64,
    pub(crate) conversation: String,
}

/// A queue.
///
/// Invariants: the waiting order holds exactly the queue's conversations with
/// [`Status::Waiting`]; `recent_assignments` holds at most [`THROUGHPUT_WINDOW`] times, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The queue's name.
    pub name: String,
    /// Its settings.
    pub config: QueueConfig,
    /// When its last assignments happened, oldest first; the wait estimate's input.
    pub recent_assignments: VecDeque<i64>,
    /// The agent its strategy last offered to: where round robin continues.
    pub last_offered: Option<String>,
    pub(crate) waiting: BTreeSet<WaitKey>,
}

impl Queue {
    fn new(name: &str, config: QueueConfig) -> Self {
        Queue {
            name: name.to_owned(),
            config,
            recent_assignments: VecDeque::new(),
            last_offered: None,
            waiting: BTreeSet::new(),
        }
    }

    /// The ids of the conversations waiting in it, in the order they are served.
    pub fn waiting(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(|k| k.conversation.as_str())
    }

    /// How many conversations wait in it.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }
}

/// Where a waiting conversation stands in its queue. See [`Dispatcher::position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePosition {
    /// 1 for the next conversation the queue serves.
    pub position: u32,
    /// How long until it is assigned at the queue's recent pace, in seconds (rounded up); `None`
    /// when the queue has assigned nothing yet.
    pub estimated_wait_secs: Option<u64>,
}

/// The assignment model: agents, queues and the conversations waiting, offered or assigned.
///
/// Commands (`&self`) check a request against the state and return the events to record, or a
/// [`crate::Rejection`]; they never change the state. [`Dispatcher::apply`] folds an event in.
/// The caller records the events, then applies them, so a state rebuilt from the recorded
/// events is the live state (the two compare equal).
///
/// Serialised (for snapshots) it holds agents, queues and conversations; the indices and loads
/// are rebuilt when it is read back, and a snapshot whose references do not hold together is
/// refused rather than trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Snapshot", into = "Snapshot")]
pub struct Dispatcher {
    pub(crate) agents: BTreeMap<String, Agent>,
    pub(crate) queues: BTreeMap<String, Queue>,
    pub(crate) conversations: BTreeMap<String, Conversation>,
    /// Every waiting conversation of every queue, in serving order: dispatch walks this once.
    pub(crate) waiting: BTreeSet<WaitKey>,
    /// Pending offers by expiry, for the service's timer.
    pub(crate) expiries: BTreeSet<(i64, String)>,
}

impl Dispatcher {
    /// An empty dispatcher: no agents, queues or conversations.
    pub fn new() -> Self {
        Dispatcher::default()
    }

    /// A dispatcher rebuilt from recorded events, applied in order.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Dispatcher::new();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// The agent with this id.
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    /// Every agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// The queue with this name.
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.get(name)
    }

    /// Every queue, by name.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    /// The conversation with this id, while it is waiting, offered or assigned.
    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.conversations.get(id)
    }

    /// Every conversation, by id.
    pub fn conversations(&self) -> impl Iterator<Item = &Conversation> {
        self.conversations.values()
    }

    /// Every waiting conversation of every queue, in the order [`Dispatcher::dispatch`]
    /// considers them.
    pub fn waiting(&self) -> impl Iterator<Item = &str> {
        self.waiting.iter().map(|k| k.conversation.as_str())
    }

    /// Pending offers as `(expires_at_ms, conversation, agent)`, soonest first: what the
    /// service's timer must watch (re-arm from this after a restart).
    pub fn pending_offers(&self) -> impl Iterator<Item = (i64, &str, &str)> {
        self.expiries.iter().filter_map(|(at, id)| {
            let agent = self.conversations.get(id)?.status.agent()?;
            Some((*at, id.as_str(), agent))
        })
    }

    /// When the soonest pending offer expires.
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Where a waiting conversation stands in its queue, and how long it is likely to wait.
    ///
    /// The position counts the conversations of its queue that are served before it, plus one;
    /// conversations offered to an agent are not counted (they are being served). The estimate
    /// assumes the queue keeps assigning at the pace of its last [`THROUGHPUT_WINDOW`]
    /// assignments, measured up to `now_ms` so a queue that stopped assigning looks slower the
    /// longer it stays stopped: `position × (now − oldest recent assignment) / recent
    /// assignments`. It ignores conversations of higher priority that may arrive later.
    /// `None` when the conversation is not waiting (unknown, offered or assigned).
    ///
    /// Cost: O(position) — a walk of the queue's order up to the conversation.
    pub fn position(&self, conversation: &str, now_ms: i64) -> Option<QueuePosition> {
        let conv = self.conversations.get(conversation)?;
        if conv.status != Status::Waiting {
            return None;
        }
        let queue = self.queues.get(&conv.queue)?;
        let key = conv.wait_key();
        let ahead = queue.waiting.range(..&key).count();
        let position = u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1);
        Some(QueuePosition {
            position,
            estimated_wait_secs: estimate_wait(&queue.recent_assignments, position, now_ms),
        })
    }

    /// Folds one event into the state. An event that does not fit (about an unknown
    /// conversation, an offer that is not pending, an agent registered twice) changes nothing,
    /// so the indices stay consistent whatever the log holds.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::AgentRegistered { agent, profile } => {
                if !self.agents.contains_key(agent) {
                    self.agents.insert(agent.clone(), Agent::new(agent, profile.clone()));
                }
            }
            Event::AgentUpdated { agent, profile } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.profile = profile.clone();
                }
            }
            Event::PresenceChanged { agent, presence, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.presence = *presence;
                }
            }
            Event::QueueConfigured { queue, config } => match self.queues.get_mut(queue) {
                Some(q) => q.config = *config,
                None => {
                    self.queues.insert(queue.clone(), Queue::new(queue, *config));
                }
            },
            Event::Enqueued {
                conversation,
                queue,
                priority,
                channel,
                skills,
                languages,
                at_ms,
            } => {
                if self.conversations.contains_key(conversation) || !self.queues.contains_key(queue) {
                    return;
                }
                let conv = Conversation {
                    id: conversation.clone(),
                    queue: queue.clone(),
                    priority: *priority,
                    channel: channel.clone(),
                    skills: skills.clone(),
                    languages: languages.clone(),
                    enqueued_at_ms: *at_ms,
                    status: Status::Waiting,
                    declines: BTreeMap::new(),
                };
                self.conversations.insert(conversation.clone(), conv);
                self.insert_waiting(conversation);
            }
            Event::PriorityChanged {
                conversation, priority, ..
            } => {
                let waiting = self.remove_waiting(conversation);
                if let Some(conv) = self.conversations.get_mut(conversation) {
                    conv.priority = *priority;
                }
                if waiting {
                    self.insert_waiting(conversation);
                }
            }
            Event::Offered {
                conversation,
                agent,
                at_ms,
                expires_at_ms,
                direct,
                ..
            } => self.apply_offered(conversation, agent, *at_ms, *expires_at_ms, *direct),
            Event::OfferRejected {
                conversation,
                agent,
                at_ms,
            }
            | Event::OfferExpired {
                conversation,
                agent,
                at_ms,
            } => {
                if self.take_back_offer(conversation, agent, *at_ms)
                    && let Some(conv) = self.conversations.get_mut(conversation)
                {
                    let times = conv.declines.entry(agent.clone()).or_insert(0);
                    *times = times.saturating_add(1);
                }
            }
            Event::OfferWithdrawn {
                conversation,
                agent,
                at_ms,
                ..
            } => {
                self.take_back_offer(conversation, agent, *at_ms);
            }
            Event::Assigned {
                conversation,
                agent,
                at_ms,
                ..
            } => self.apply_assigned(conversation, agent, *at_ms),
            Event::Released {
                conversation,
                agent,
                at_ms,
            } => {
                let assigned_to_agent = self
                    .conversations
                    .get(conversation)
                    .is_some_and(|c| matches!(&c.status, Status::Assigned { agent: a, .. } if a == agent));
                if assigned_to_agent {
                    self.detach(conversation, *at_ms);
                    self.conversations.remove(conversation);
                }
            }
            Event::Removed {
                conversation, at_ms, ..
            } => {
                if self.conversations.contains_key(conversation) {
                    self.detach(conversation, *at_ms);
                    self.remove_waiting(conversation);
                    self.conversations.remove(conversation);
                }
            }
            Event::Transferred {
                conversation,
                to,
                at_ms,
                ..
            } => self.apply_transferred(conversation, to, *at_ms),
        }
    }

    fn apply_offered(&mut self, conversation: &str, agent: &str, at_ms: i64, expires_at_ms: i64, direct: bool) {
        let Some(conv) = self.conversations.get(conversation) else {
            return;
        };
        if conv.status != Status::Waiting || !self.agents.contains_key(agent) {
            return;
        }
        let queue = conv.queue.clone();
        let channel = conv.channel.clone();
        self.remove_waiting(conversation);
        if let Some(conv) = self.conversations.get_mut(conversation) {
            conv.status = Status::Offered {
                agent: agent.to_owned(),
                offered_at_ms: at_ms,
                expires_at_ms,
                direct,
            };
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.offered.insert(conversation.to_owned());
            a.add_load(&channel);
        }
        self.expiries.insert((expires_at_ms, conversation.to_owned()));
        if !direct && let Some(q) = self.queues.get_mut(&queue) {
            q.last_offered = Some(agent.to_owned());
        }
    }

    fn apply_assigned(&mut self, conversation: &str, agent: &str, at_ms: i64) {
        let Some(conv) = self.conversations.get_mut(conversation) else {
            return;
        };
        let Status::Offered {
            agent: offered_to,
            expires_at_ms,
            ..
        } = &conv.status
        else {
            return;
        };
        if offered_to != agent {
            return;
        }
        self.expiries.remove(&(*expires_at_ms, conversation.to_owned()));
        conv.status = Status::Assigned {
            agent: agent.to_owned(),
            assigned_at_ms: at_ms,
        };
        let queue = conv.queue.clone();
        if let Some(a) = self.agents.get_mut(agent) {
            a.offered.remove(conversation);
            a.assigned.insert(conversation.to_owned());
            a.last_activity_ms = Some(at_ms);
        }
        if let Some(q) = self.queues.get_mut(&queue) {
            if q.recent_assignments.len() >= THROUGHPUT_WINDOW {
                q.recent_assignments.pop_front();
            }
            q.recent_assignments.push_back(at_ms);
        }
    }

    fn apply_transferred(&mut self, conversation: &str, to: &TransferTarget, at_ms: i64) {
        if !self.conversations.contains_key(conversation) {
            return;
        }
        match to {
            TransferTarget::Queue { queue, skills } => {
                if !self.queues.contains_key(queue) {
                    return;
                }
                self.detach(conversation, at_ms);
                self.remove_waiting(conversation);
                if let Some(conv) = self.conversations.get_mut(conversation) {
                    conv.queue = queue.clone();
                    conv.skills = skills.clone();
                    conv.enqueued_at_ms = at_ms;
                    conv.declines.clear();
                    conv.status = Status::Waiting;
                }
                self.insert_waiting(conversation);
            }
            TransferTarget::Agent { agent } => {
                if !self.agents.contains_key(agent) {
                    return;
                }
                // The direct offer recorded next takes it from the waiting order; until then it
                // waits at its old place, which is also where it returns if the agent declines.
                let was_waiting = self
                    .conversations
                    .get(conversation)
                    .is_some_and(|c| c.status == Status::Waiting);
                if !was_waiting {
                    self.detach(conversation, at_ms);
                    if let Some(conv) = self.conversations.get_mut(conversation) {
                        conv.status = Status::Waiting;
                    }
                    self.insert_waiting(conversation);
                }
            }
        }
    }

    /// Ends a pending offer of `conversation` to `agent`: it waits at its place again. Returns
    /// whether there was such an offer.
    fn take_back_offer(&mut self, conversation: &str, agent: &str, at_ms: i64) -> bool {
        let offered_to_agent = self
            .conversations
            .get(conversation)
            .is_some_and(|c| matches!(&c.status, Status::Offered { agent: a, .. } if a == agent));
        if !offered_to_agent {
            return false;
        }
        self.detach(conversation, at_ms);
        if let Some(conv) = self.conversations.get_mut(conversation) {
            conv.status = Status::Waiting;
        }
        self.insert_waiting(conversation);
        true
    }

    /// Ends the conversation's offer or assignment on the agent's side (load, lists, expiry
    /// index) and leaves its status to the caller. Ending an assignment counts as activity at
    /// `at_ms` for the least-busy tie-break.
    fn detach(&mut self, conversation: &str, at_ms: i64) {
        let Some(conv) = self.conversations.get(conversation) else {
            return;
        };
        match &conv.status {
            Status::Waiting => {}
            Status::Offered {
                agent, expires_at_ms, ..
            } => {
                self.expiries.remove(&(*expires_at_ms, conversation.to_owned()));
                if let Some(a) = self.agents.get_mut(agent) {
                    a.offered.remove(conversation);
                    a.remove_load(&conv.channel);
                }
            }
            Status::Assigned { agent, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.assigned.remove(conversation);
                    a.remove_load(&conv.channel);
                    a.last_activity_ms = Some(at_ms);
                }
            }
        }
    }

    fn insert_waiting(&mut self, conversation: &str) {
        let Some(conv) = self.conversations.get(conversation) else {
            return;
        };
        let key = conv.wait_key();
        if let Some(q) = self.queues.get_mut(&conv.queue) {
            q.waiting.insert(key.clone());
        }
        self.waiting.insert(key);
    }

    /// Takes the conversation out of the waiting order; returns whether it was in it.
    fn remove_waiting(&mut self, conversation: &str) -> bool {
        let Some(conv) = self.conversations.get(conversation) else {
            return false;
        };
        if conv.status != Status::Waiting {
            return false;
        }
        let key = conv.wait_key();
        if let Some(q) = self.queues.get_mut(&conv.queue) {
            q.waiting.remove(&key);
        }
        self.waiting.remove(&key)
    }
}

fn estimate_wait(recent: &VecDeque<i64>, position: u32, now_ms: i64) -> Option<u64> {
    let count = u128::try_from(recent.len()).ok().filter(|&n| n > 0)?;
    let oldest = recent.iter().min()?;
    let span_ms = u128::try_from(now_ms.checked_sub(*oldest)?).ok().filter(|&s| s > 0)?;
    let wait_ms = u128::from(position).saturating_mul(span_ms) / count;
    Some(u64::try_from(wait_ms.div_ceil(1000)).unwrap_or(u64::MAX))
}

/// The stored form of a [`Dispatcher`]: what cannot be derived.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    agents: Vec<AgentSnapshot>,
    queues: Vec<QueueSnapshot>,
    conversations: Vec<Conversation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSnapshot {
    id: String,
    profile: AgentProfile,
    presence: Presence,
    last_activity_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSnapshot {
    name: String,
    config: QueueConfig,
    recent_assignments: VecDeque<i64>,
    last_offered: Option<String>,
}

impl From<Dispatcher> for Snapshot {
    fn from(state: Dispatcher) -> Self {
        Snapshot {
            agents: state
                .agents
                .into_values()
                .map(|a| AgentSnapshot {
                    id: a.id,
                    profile: a.profile,
                    presence: a.presence,
                    last_activity_ms: a.last_activity_ms,
                })
                .collect(),
            queues: state
                .queues
                .into_values()
                .map(|q| QueueSnapshot {
                    name: q.name,
                    config: q.config,
                    recent_assignments: q.recent_assignments,
                    last_offered: q.last_offered,
                })
                .collect(),
            conversations: state.conversations.into_values().collect(),
        }
    }
}

impl TryFrom<Snapshot> for Dispatcher {
    type Error = String;

    fn try_from(snapshot: Snapshot) -> Result<Self, String> {
        let mut state = Dispatcher::new();
        for a in snapshot.agents {
            if state.agents.contains_key(&a.id) {
                return Err(format!("agent {} appears twice", a.id));
            }
            let mut agent = Agent::new(&a.id, a.profile);
            agent.presence = a.presence;
            agent.last_activity_ms = a.last_activity_ms;
            state.agents.insert(a.id, agent);
        }
        for q in snapshot.queues {
            if state.queues.contains_key(&q.name) {
                return Err(format!("queue {} appears twice", q.name));
            }
            if q.recent_assignments.len() > THROUGHPUT_WINDOW {
                return Err(format!("queue {} keeps too many assignment times", q.name));
            }
            let mut queue = Queue::new(&q.name, q.config);
            queue.recent_assignments = q.recent_assignments;
            queue.last_offered = q.last_offered;
            state.queues.insert(q.name, queue);
        }
        for conv in snapshot.conversations {
            let id = conv.id.clone();
            if state.conversations.contains_key(&id) {
                return Err(format!("conversation {id} appears twice"));
            }
            if !state.queues.contains_key(&conv.queue) {
                return Err(format!("conversation {id} waits in unknown queue {}", conv.queue));
            }
            let channel = conv.channel.clone();
            let status = conv.status.clone();
            state.conversations.insert(id.clone(), conv);
            match status {
                Status::Waiting => state.insert_waiting(&id),
                Status::Offered {
                    agent, expires_at_ms, ..
                } => {
                    let a = state
                        .agents
                        .get_mut(&agent)
                        .ok_or_else(|| format!("conversation {id} is offered to unknown agent {agent}"))?;
                    a.offered.insert(id.clone());
                    a.add_load(&channel);
                    state.expiries.insert((expires_at_ms, id));
                }
                Status::Assigned { agent, .. } => {
                    let a = state
                        .agents
                        .get_mut(&agent)
                        .ok_or_else(|| format!("conversation {id} is assigned to unknown agent {agent}"))?;
                    a.assigned.insert(id);
                    a.add_load(&channel);
                }
            }
        }
        Ok(state)
    }
}
