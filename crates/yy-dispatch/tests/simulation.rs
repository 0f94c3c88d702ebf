//! Deterministic randomized simulation: 100 conversations arrive at once for 5 agents of varied
//! capacity and skills; then agents accept, reject, let offers expire, change presence and
//! profile, release, and conversations are removed, transferred, re-prioritised and added, over
//! simulated time. After every step every invariant is checked, the recorded log is audited
//! event by event, and replaying the log from scratch must give the live state.

mod common;

use std::collections::BTreeMap;

use common::{World, qualifies};
use yy_dispatch::{
    AgentProfile, Event, NewConversation, Presence, QueueConfig, Rejection, SkillRequirement, Status, Strategy,
    TransferTarget,
};

/// SplitMix64: tiny, good enough for choosing test actions, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

const QUEUES: [(&str, Strategy, u64); 3] = [
    ("general", Strategy::LeastBusy, 30_000),
    ("refunds", Strategy::RoundRobin, 15_000),
    ("vip", Strategy::LeastBusy, 20_000),
];
const AGENTS: [&str; 5] = ["a1", "a2", "a3", "a4", "a5"];
const T0: i64 = 1_700_000_000_000;

fn base_profile(agent: &str) -> AgentProfile {
    let p = |skills: &[(&str, u8)], languages: &[&str], capacity: &[(&str, u32)], queues: &[&str]| AgentProfile {
        skills: skills.iter().map(|(s, l)| ((*s).to_owned(), *l)).collect(),
        languages: languages.iter().map(|l| (*l).to_owned()).collect(),
        capacity: capacity.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect(),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
    };
    match agent {
        "a1" => p(
            &[("refund", 3), ("billing", 2)],
            &["zh", "en"],
            &[("web", 3), ("email", 5)],
            &[],
        ),
        "a2" => p(&[("refund", 1)], &["zh"], &[("web", 1)], &["general", "refunds"]),
        "a3" => p(&[("billing", 4)], &["en"], &[("email", 4)], &[]),
        "a4" => p(
            &[("refund", 5)],
            &["zh"],
            &[("web", 2), ("email", 2)],
            &["vip", "refunds"],
        ),
        _ => p(&[], &["en", "ja"], &[("web", 5)], &["general"]),
    }
}

fn random_conversation(rng: &mut Rng, id: String) -> NewConversation {
    let queue = rng.pick(&QUEUES).map_or("general", |q| q.0).to_owned();
    let skills = match rng.below(5) {
        0 => vec![SkillRequirement::new("refund", 1 + rng.below(3) as u8)],
        1 => vec![SkillRequirement::new("billing", 1 + rng.below(2) as u8)],
        _ => Vec::new(),
    };
    let languages = match rng.below(4) {
        0 => vec!["zh".to_owned()],
        1 => vec!["en".to_owned()],
        2 => vec!["zh".to_owned(), "en".to_owned()],
        _ => Vec::new(),
    };
    NewConversation {
        id,
        queue,
        priority: 1 + rng.below(10) as u8,
        channel: if rng.chance(70) { "web" } else { "email" }.to_owned(),
        skills,
        languages,
    }
}

/// Follows the log on its own, from the events alone, and fails on any event that would offer
/// a conversation to two agents, assign it twice, or act on an offer that is not pending.
#[derive(Default)]
struct Auditor {
    phase: BTreeMap<String, Phase>,
    assignments: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Waiting,
    Offered(String),
    Assigned(String),
}

impl Auditor {
    fn check(&mut self, event: &Event) {
        let expect_offer = |phase: Option<&Phase>, agent: &str| {
            assert_eq!(phase, Some(&Phase::Offered(agent.to_owned())), "{event:?}");
        };
        match event {
            Event::Enqueued { conversation, .. } => {
                assert!(
                    self.phase.insert(conversation.clone(), Phase::Waiting).is_none(),
                    "{event:?}"
                );
            }
            Event::Offered {
                conversation, agent, ..
            } => {
                assert_eq!(
                    self.phase.get(conversation),
                    Some(&Phase::Waiting),
                    "offered while not waiting: {event:?}"
                );
                self.phase.insert(conversation.clone(), Phase::Offered(agent.clone()));
            }
            Event::OfferRejected {
                conversation, agent, ..
            }
            | Event::OfferExpired {
                conversation, agent, ..
            }
            | Event::OfferWithdrawn {
                conversation, agent, ..
            } => {
                expect_offer(self.phase.get(conversation), agent);
                self.phase.insert(conversation.clone(), Phase::Waiting);
            }
            Event::Assigned {
                conversation, agent, ..
            } => {
                expect_offer(self.phase.get(conversation), agent);
                self.phase.insert(conversation.clone(), Phase::Assigned(agent.clone()));
                self.assignments += 1;
            }
            Event::Released {
                conversation, agent, ..
            } => {
                assert_eq!(
                    self.phase.remove(conversation),
                    Some(Phase::Assigned(agent.clone())),
                    "{event:?}"
                );
            }
            Event::Removed { conversation, .. } => {
                assert!(self.phase.remove(conversation).is_some(), "{event:?}");
            }
            Event::Transferred { conversation, .. } => {
                assert!(self.phase.contains_key(conversation), "{event:?}");
                self.phase.insert(conversation.clone(), Phase::Waiting);
            }
            Event::PriorityChanged { conversation, .. } => {
                assert!(self.phase.contains_key(conversation), "{event:?}");
            }
            Event::AgentRegistered { .. }
            | Event::AgentUpdated { .. }
            | Event::PresenceChanged { .. }
            | Event::QueueConfigured { .. } => {}
        }
    }
}

struct Sim {
    rng: Rng,
    world: World,
    auditor: Auditor,
    now: i64,
    next_id: u32,
    allow_lowering: bool,
    refused: u64,
}

impl Sim {
    fn new(seed: u64, allow_lowering: bool) -> Self {
        let mut sim = Sim {
            rng: Rng(seed),
            world: World::default(),
            auditor: Auditor::default(),
            now: T0,
            next_id: 0,
            allow_lowering,
            refused: 0,
        };
        for (name, strategy, timeout) in QUEUES {
            let events = sim
                .world
                .state
                .configure_queue(name, QueueConfig::new(strategy, timeout));
            sim.command(events);
        }
        for agent in AGENTS {
            let events = sim.world.state.register_agent(agent, base_profile(agent));
            sim.command(events);
            let presence = if agent == "a5" {
                Presence::Away
            } else {
                Presence::Online
            };
            let events = sim.world.state.set_presence(agent, presence, T0);
            sim.command(events);
        }
        sim
    }

    /// Records a command's events (or counts its refusal), then dispatches and records the
    /// offers, as the routing service does for each request.
    fn command(&mut self, result: Result<Vec<Event>, Rejection>) {
        match result {
            Ok(events) => self.record(events),
            Err(_) => self.refused += 1,
        }
        let offers = self.world.state.dispatch(self.now);
        self.record(offers);
        assert!(
            self.world.state.dispatch(self.now).is_empty(),
            "a second dispatch found more work"
        );
    }

    fn record(&mut self, events: Vec<Event>) {
        for event in &events {
            self.auditor.check(event);
        }
        self.world.record(events);
    }

    fn arrive(&mut self) {
        let id = format!("c{:03}", self.next_id);
        self.next_id += 1;
        let conversation = random_conversation(&mut self.rng, id);
        let events = self.world.state.enqueue(conversation, self.now);
        self.record(events.expect("a new conversation is accepted"));
    }

    fn pending(&self) -> Vec<(String, String)> {
        self.world
            .state
            .pending_offers()
            .map(|(_, c, a)| (c.to_owned(), a.to_owned()))
            .collect()
    }

    fn assigned(&self) -> Vec<(String, String)> {
        self.world
            .state
            .conversations()
            .filter_map(|c| match &c.status {
                Status::Assigned { agent, .. } => Some((c.id.clone(), agent.clone())),
                _ => None,
            })
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.world.state.conversations().map(|c| c.id.clone()).collect()
    }

    /// The service's timers: every offer due by now expires.
    fn fire_timers(&mut self) {
        let due: Vec<(String, String)> = self
            .world
            .state
            .pending_offers()
            .take_while(|(at, _, _)| *at <= self.now)
            .map(|(_, c, a)| (c.to_owned(), a.to_owned()))
            .collect();
        for (c, a) in due {
            let events = self.world.state.offer_expired(&c, &a, self.now);
            assert_eq!(events.len(), 1, "a due offer expires");
            self.command(Ok(events));
        }
    }

    fn step(&mut self) {
        self.now += self.rng.below(6_000) as i64;
        self.fire_timers();
        let now = self.now;
        let pending = self.pending();
        let assigned = self.assigned();
        let ids = self.ids();
        let roll = self.rng.below(100);
        let offer = self.rng.pick(&pending).cloned();
        let assignment = self.rng.pick(&assigned).cloned();
        let conversation = self.rng.pick(&ids).cloned();
        let agent = self.rng.pick(&AGENTS).copied().unwrap_or("a1");
        let queue = self.rng.pick(&QUEUES).map_or("general", |q| q.0);
        let coin = self.rng.chance(50);
        let result = match (roll, offer, assignment, conversation) {
            (0..=29, Some((c, a)), _, _) => self.world.state.accept(&c, &a, now),
            (30..=41, Some((c, a)), _, _) => self.world.state.reject(&c, &a, now),
            (42..=61, _, Some((c, a)), _) => self.world.state.release(&a, &c, now),
            (62..=69, ..) => {
                let presence = [Presence::Online, Presence::Online, Presence::Away, Presence::Offline];
                let presence = self.rng.pick(&presence).copied().unwrap_or(Presence::Online);
                self.world.state.set_presence(agent, presence, now)
            }
            (70..=73, _, _, Some(c)) => Ok(self.world.state.remove(&c, now)),
            (74..=79, _, _, Some(c)) if coin => {
                self.world
                    .state
                    .transfer(&c, TransferTarget::Agent { agent: agent.into() }, now)
            }
            (74..=79, _, _, Some(c)) => {
                let skills = if self.rng.chance(30) {
                    vec![SkillRequirement::new("billing", 1)]
                } else {
                    vec![]
                };
                let to = TransferTarget::Queue {
                    queue: queue.into(),
                    skills,
                };
                self.world.state.transfer(&c, to, now)
            }
            (80..=84, _, _, Some(c)) => {
                let priority = 1 + self.rng.below(10) as u8;
                self.world.state.set_priority(&c, priority, now)
            }
            (85..=89, ..) => {
                let profile = self.varied_profile(agent);
                self.world.state.update_agent(agent, profile, now)
            }
            (90..=94, ..) => {
                self.arrive();
                Ok(vec![])
            }
            (95.., _, _, c) => {
                // A stale or early timer: records nothing unless that offer really is due.
                let c = c.unwrap_or_default();
                let events = self.world.state.offer_expired(&c, agent, now);
                let due = self.world.state.conversation(&c).is_some_and(|conv| {
                    matches!(&conv.status, Status::Offered { agent: a, expires_at_ms, .. }
                        if a == agent && *expires_at_ms <= now)
                });
                assert_eq!(events.is_empty(), !due, "offer_expired only for a due offer");
                Ok(events)
            }
            // Nothing of that kind to act on: a click on an offer that is no longer there.
            (_, _, _, c) => self.world.state.accept(&c.unwrap_or_default(), agent, now),
        };
        self.command(result);
        self.world.assert_sound(true);
    }

    /// The agent's base profile with random changes to skills, languages, queues and capacity.
    fn varied_profile(&mut self, agent: &str) -> AgentProfile {
        let mut profile = base_profile(agent);
        if self.rng.chance(40) {
            profile.skills.insert("billing".into(), 1 + self.rng.below(5) as u8);
        }
        if self.rng.chance(30) {
            profile.languages.insert("en".into());
        }
        if self.rng.chance(20) {
            profile.queues.clear();
        }
        let current = self.current_capacity(agent);
        for (channel, capacity) in profile.capacity.iter_mut() {
            let change = self.rng.below(3) as u32;
            *capacity = if self.allow_lowering && self.rng.chance(50) {
                capacity.saturating_sub(change)
            } else {
                // Without cuts, never below what the agent has now.
                (*capacity + change).max(current.get(channel).copied().unwrap_or(0))
            };
        }
        if self.allow_lowering {
            self.world.capacity_lowered = true;
        }
        profile
    }

    fn current_capacity(&self, agent: &str) -> BTreeMap<String, u32> {
        self.world
            .state
            .agent(agent)
            .map(|a| a.profile.capacity.clone())
            .unwrap_or_default()
    }

    /// The base profile, keeping larger capacities unless cuts are allowed.
    fn restored_profile(&self, agent: &str) -> AgentProfile {
        let mut profile = base_profile(agent);
        if !self.allow_lowering {
            for (channel, capacity) in self.current_capacity(agent) {
                let entry = profile.capacity.entry(channel).or_insert(0);
                *entry = (*entry).max(capacity);
            }
        }
        profile
    }

    /// Everyone online with their base profile, every offer accepted and every conversation
    /// released until nothing moves: every conversation some agent qualifies for gets served.
    fn drain(&mut self) {
        for agent in AGENTS {
            let events = self
                .world
                .state
                .update_agent(agent, self.restored_profile(agent), self.now);
            self.command(events);
            let events = self.world.state.set_presence(agent, Presence::Online, self.now);
            self.command(events);
        }
        for _ in 0..10_000 {
            self.now += 1_000;
            let pending = self.pending();
            let assigned = self.assigned();
            if pending.is_empty() && assigned.is_empty() {
                break;
            }
            for (c, a) in pending {
                let events = self.world.state.accept(&c, &a, self.now);
                self.command(events);
            }
            for (c, a) in assigned {
                let events = self.world.state.release(&a, &c, self.now);
                self.command(events);
            }
        }
        self.world.assert_sound(true);
        for conv in self.world.state.conversations() {
            assert_eq!(conv.status, Status::Waiting, "{} is still with an agent", conv.id);
            assert!(
                !self.world.state.agents().any(|a| qualifies(a, conv)),
                "{} waits although {} could take it",
                conv.id,
                self.world
                    .state
                    .agents()
                    .find(|a| qualifies(a, conv))
                    .map_or("", |a| a.id.as_str())
            );
        }
    }
}

fn simulate(seed: u64, steps: u32, allow_lowering: bool) -> Sim {
    let mut sim = Sim::new(seed, allow_lowering);
    for _ in 0..100 {
        sim.arrive();
    }
    sim.command(Ok(vec![]));
    sim.world.assert_sound(true);
    sim.world.assert_serde_roundtrip();
    let offered = sim.pending().len();
    assert!(offered > 0, "the first dispatch offers to the online agents");
    for step in 0..steps {
        sim.step();
        if step % 100 == 99 {
            sim.world.assert_serde_roundtrip();
        }
    }
    sim.drain();
    sim.world.assert_serde_roundtrip();
    sim
}

/// How often each kind of event was recorded, by its serialised `type`.
fn kinds(log: &[Event]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for event in log {
        let json = serde_json::to_value(event).expect("json");
        let kind = json["type"].as_str().unwrap_or("?").to_owned();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

#[test]
fn randomized_operations_keep_every_invariant() {
    for seed in [1, 2, 3, 4] {
        let sim = simulate(seed, 800, false);
        assert!(
            sim.auditor.assignments > 50,
            "seed {seed}: {} assignments",
            sim.auditor.assignments
        );
        assert!(sim.refused > 0, "seed {seed}: some random commands should be refused");
        let kinds = kinds(&sim.world.log);
        for kind in [
            "offered",
            "offer_rejected",
            "offer_expired",
            "offer_withdrawn",
            "assigned",
            "released",
            "removed",
            "transferred",
            "priority_changed",
            "agent_updated",
            "presence_changed",
        ] {
            assert!(
                kinds.contains_key(kind),
                "seed {seed}: the simulation never recorded {kind}: {kinds:?}"
            );
        }
    }
}

#[test]
fn randomized_operations_with_capacity_cuts_keep_every_invariant() {
    for seed in [11, 12] {
        let sim = simulate(seed, 500, true);
        assert!(
            sim.auditor.assignments > 50,
            "seed {seed}: {} assignments",
            sim.auditor.assignments
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_log() {
    let a = simulate(7, 150, false);
    let b = simulate(7, 150, false);
    assert_eq!(a.world.log, b.world.log);
    assert_ne!(a.world.log, simulate(8, 150, false).world.log);
}
