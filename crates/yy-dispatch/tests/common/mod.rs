//! Shared test helpers: building profiles and conversations, recording events like the routing
//! service does, and checking every invariant independently of the crate's own check.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use yy_dispatch::{
    Agent, AgentProfile, Conversation, Dispatcher, Event, NewConversation, Presence, QueueConfig, Rejection,
    SkillRequirement, Status, Strategy, Verdict,
};

/// An agent profile from compact parts: `skills` as `("refund", 3)`, capacity as `("web", 3)`.
pub fn profile(skills: &[(&str, u8)], languages: &[&str], capacity: &[(&str, u32)]) -> AgentProfile {
    AgentProfile {
        skills: skills.iter().map(|(s, l)| ((*s).to_owned(), *l)).collect(),
        languages: languages.iter().map(|l| (*l).to_owned()).collect(),
        capacity: capacity.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect(),
        queues: BTreeSet::new(),
    }
}

/// A conversation on `web` in `queue`, priority 5, no requirements.
pub fn conv(id: &str, queue: &str) -> NewConversation {
    NewConversation {
        id: id.to_owned(),
        queue: queue.to_owned(),
        priority: 5,
        channel: "web".to_owned(),
        skills: Vec::new(),
        languages: Vec::new(),
    }
}

pub fn skill(name: &str, min_level: u8) -> SkillRequirement {
    SkillRequirement::new(name, min_level)
}

/// The state together with everything recorded so far, as the routing service keeps it.
#[derive(Debug, Default)]
pub struct World {
    pub state: Dispatcher,
    pub log: Vec<Event>,
    /// Set once a capacity was lowered below an agent's assignments: from then on only the
    /// crate's own rule (offers fit) holds, not the strict count.
    pub capacity_lowered: bool,
}

impl World {
    /// A world whose state is the fold of `events`.
    pub fn given(events: Vec<Event>) -> Self {
        let mut world = World::default();
        world.record(events);
        world
    }

    /// Records and applies events.
    pub fn record(&mut self, events: Vec<Event>) -> Vec<Event> {
        for event in &events {
            assert_offer_allowed(&self.state, event);
            self.state.apply(event);
        }
        self.log.extend(events.iter().cloned());
        events
    }

    /// Records the events of a command that must succeed.
    pub fn ok(&mut self, result: Result<Vec<Event>, Rejection>) -> Vec<Event> {
        match result {
            Ok(events) => self.record(events),
            Err(rejection) => panic!("refused: {rejection}"),
        }
    }

    /// Runs dispatch at `now` and records its offers.
    pub fn dispatch(&mut self, now: i64) -> Vec<Event> {
        let events = self.state.dispatch(now);
        self.record(events)
    }

    pub fn queue(&mut self, name: &str, strategy: Strategy, timeout_ms: u64) {
        let events = self.state.configure_queue(name, QueueConfig::new(strategy, timeout_ms));
        self.ok(events);
    }

    /// Registers an agent and puts them online.
    pub fn online_agent(&mut self, id: &str, profile: AgentProfile) {
        let events = self.state.register_agent(id, profile);
        self.ok(events);
        let events = self.state.set_presence(id, Presence::Online, 0);
        self.ok(events);
    }

    pub fn enqueue(&mut self, conversation: NewConversation, now: i64) {
        let events = self.state.enqueue(conversation, now);
        self.ok(events);
    }

    /// Asserts every invariant: the crate's own check, the independent "nobody idles" check
    /// (only meaningful right after a dispatch), and that replaying the log — also through
    /// JSON — and reading a snapshot back give the live state.
    pub fn assert_sound(&self, after_dispatch: bool) {
        let violations = self.state.violations();
        assert!(violations.is_empty(), "{violations:#?}");
        if !self.capacity_lowered {
            assert_capacity_strict(&self.state);
        }
        if after_dispatch {
            let stranded = stranded(&self.state);
            assert!(
                stranded.is_empty(),
                "waiting while an eligible agent is free: {stranded:?}"
            );
        }
        assert_eq!(
            Dispatcher::replay(&self.log),
            self.state,
            "replay differs from the live state"
        );
    }

    /// The expensive part of soundness: the log and the state through JSON.
    pub fn assert_serde_roundtrip(&self) {
        let json = serde_json::to_string(&self.log).expect("events serialise");
        let events: Vec<Event> = serde_json::from_str(&json).expect("events deserialise");
        assert_eq!(events, self.log);
        let snapshot = serde_json::to_string(&self.state).expect("state serialises");
        let read: Dispatcher = serde_json::from_str(&snapshot).expect("state deserialises");
        assert_eq!(read, self.state, "snapshot differs from the live state");
    }
}

/// No agent's assigned plus offered conversations exceed their capacity on any channel, counted
/// from the conversations (valid while no capacity was lowered below an agent's assignments).
pub fn assert_capacity_strict(state: &Dispatcher) {
    let mut load: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for conv in state.conversations() {
        if let Some(agent) = conv.status.agent() {
            *load.entry((agent, conv.channel.as_str())).or_default() += 1;
        }
    }
    for ((agent, channel), n) in load {
        let a = state.agent(agent).expect("agent exists");
        assert!(
            a.profile.capacity_on(channel) >= n,
            "agent {agent} holds {n} on {channel}, capacity {}",
            a.profile.capacity_on(channel)
        );
    }
}

/// Waiting conversations paired with an agent who could take them now, computed from the
/// definition rather than with the crate's dispatch code.
pub fn stranded(state: &Dispatcher) -> Vec<(String, String)> {
    let mut load: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for conv in state.conversations() {
        if let Some(agent) = conv.status.agent() {
            *load.entry((agent, conv.channel.as_str())).or_default() += 1;
        }
    }
    let mut found = Vec::new();
    for conv in state.conversations().filter(|c| c.status == Status::Waiting) {
        let qualified: Vec<_> = state
            .agents()
            .filter(|a| a.presence == Presence::Online && qualifies(a, conv))
            .collect();
        let declines = |id: &str| conv.declines.get(id).copied().unwrap_or(0);
        let Some(fewest) = qualified.iter().map(|a| declines(&a.id)).min() else {
            continue;
        };
        for a in qualified {
            let held = load.get(&(a.id.as_str(), conv.channel.as_str())).copied().unwrap_or(0);
            if held < a.profile.capacity_on(&conv.channel) && declines(&a.id) <= fewest {
                found.push((conv.id.clone(), a.id.clone()));
            }
        }
    }
    found
}

/// Checks an offer the strategy made against the state it was made in, from the definitions:
/// the agent is eligible and has had no more turns than any other qualified agent, the strategy
/// would pick exactly them, and the explanation lists every agent of the queue once, in id
/// order, with only them chosen.
pub fn assert_offer_allowed(state: &Dispatcher, event: &Event) {
    let Event::Offered {
        conversation,
        agent,
        strategy,
        direct: false,
        candidates,
        ..
    } = event
    else {
        return;
    };
    let conv = state.conversation(conversation).expect("offered conversation exists");
    assert_eq!(conv.status, Status::Waiting, "{event:?}");
    let queue = state.queue(&conv.queue).expect("queue exists");
    assert_eq!(queue.config.strategy, *strategy);
    let held = |a: &Agent, channel: Option<&str>| {
        state
            .conversations()
            .filter(|c| c.status.agent() == Some(a.id.as_str()) && channel.is_none_or(|ch| c.channel == ch))
            .count() as u64
    };
    let declines = |a: &Agent| conv.declines.get(&a.id).copied().unwrap_or(0);
    let qualified: Vec<&Agent> = state
        .agents()
        .filter(|a| a.presence == Presence::Online && qualifies(a, conv))
        .collect();
    let fewest = qualified.iter().map(|a| declines(a)).min().unwrap_or(0);
    let eligible: Vec<&Agent> = qualified
        .into_iter()
        .filter(|a| held(a, Some(&conv.channel)) < u64::from(a.profile.capacity_on(&conv.channel)))
        .filter(|a| declines(a) <= fewest)
        .collect();
    let expected = match strategy {
        Strategy::LeastBusy => eligible.iter().min_by(|a, b| {
            let share = |x: &Agent, y: &Agent| held(x, None) as u128 * y.profile.total_capacity() as u128;
            share(a, b)
                .cmp(&share(b, a))
                .then(a.last_activity_ms.cmp(&b.last_activity_ms))
                .then(a.id.cmp(&b.id))
        }),
        Strategy::RoundRobin => eligible
            .iter()
            .find(|a| queue.last_offered.as_ref().is_none_or(|last| a.id > *last))
            .or(eligible.first()),
    };
    assert_eq!(expected.map(|a| a.id.as_str()), Some(agent.as_str()), "{event:?}");
    let serving: Vec<&str> = state
        .agents()
        .filter(|a| a.profile.queues.is_empty() || a.profile.queues.contains(&conv.queue))
        .map(|a| a.id.as_str())
        .collect();
    let explained: Vec<&str> = candidates.iter().map(|c| c.agent.as_str()).collect();
    assert_eq!(
        explained, serving,
        "every agent of the queue is explained once, in id order"
    );
    let chosen: Vec<&str> = candidates
        .iter()
        .filter(|c| c.verdict == Verdict::Chosen)
        .map(|c| c.agent.as_str())
        .collect();
    assert_eq!(chosen, [agent.as_str()]);
}

/// Whether the agent's profile fits the conversation at all: queue, skills, language, channel.
pub fn qualifies(agent: &Agent, conv: &Conversation) -> bool {
    (agent.profile.queues.is_empty() || agent.profile.queues.contains(&conv.queue))
        && conv
            .skills
            .iter()
            .all(|s| agent.profile.skills.get(&s.name).copied().unwrap_or(0) >= s.min_level)
        && (conv.languages.is_empty() || conv.languages.iter().any(|l| agent.profile.languages.contains(l)))
        && agent.profile.capacity.get(&conv.channel).copied().unwrap_or(0) > 0
}

/// The agent an `offered` event names, with its conversation.
pub fn offers(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Offered {
                conversation, agent, ..
            } => Some((conversation.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

/// Pairs of strings, for comparing with [`offers`].
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}
