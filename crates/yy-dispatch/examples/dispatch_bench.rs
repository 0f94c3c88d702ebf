//! Dispatch decisions per second for 100 agents and 1,000 waiting conversations, on one core.
//!
//! `cargo run --release -p yy-dispatch --example dispatch_bench [seconds per case]`
//!
//! Cases, each a `dispatch` call on the same state (it does not change the state, so it can be
//! repeated):
//!
//! - **cold start**: every agent online and free; one call makes an offer per free place it
//!   can fill, each with its explanation (100 candidates).
//! - **all full**: offers accepted until nothing moves; the remaining conversations wait for
//!   agents who are full or do not fit, and the call offers nothing.
//! - **one place free**: as above after one conversation is released; the call walks the
//!   waiting conversations until one fits the freed place.
//! - **one place, rare fit**: all full, plus a new agent whose only channel is the one of the
//!   last conversation in serving order.

use std::hint::black_box;
use std::time::{Duration, Instant};

use yy_dispatch::{
    AgentProfile, Dispatcher, Event, NewConversation, Presence, QueueConfig, SkillRequirement, Strategy,
};

const AGENTS: usize = 100;
const WAITING: usize = 1_000;
const NOW: i64 = 1_700_000_000_000;
const QUEUES: [(&str, Strategy); 4] = [
    ("general", Strategy::LeastBusy),
    ("refunds", Strategy::RoundRobin),
    ("billing", Strategy::LeastBusy),
    ("vip", Strategy::RoundRobin),
];
const SKILLS: [&str; 4] = ["refund", "billing", "tech", "vip"];
const LANGUAGES: [&str; 3] = ["zh", "en", "ja"];

/// A fixed pseudo-random sequence, so every run measures the same state.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn apply(state: &mut Dispatcher, events: &[Event]) {
    for event in events {
        state.apply(event);
    }
}

fn must(state: &mut Dispatcher, result: Result<Vec<Event>, yy_dispatch::Rejection>) {
    match result {
        Ok(events) => apply(state, &events),
        Err(rejection) => eprintln!("setup command refused: {rejection}"),
    }
}

fn setup() -> Dispatcher {
    let mut rng = Rng(2024);
    let mut state = Dispatcher::new();
    for (name, strategy) in QUEUES {
        let events = state.configure_queue(name, QueueConfig::new(strategy, 30_000));
        must(&mut state, events);
    }
    for i in 0..AGENTS {
        let id = format!("agt_{i:03}");
        let mut profile = AgentProfile::default();
        for skill in SKILLS {
            if rng.below(3) > 0 {
                profile.skills.insert(skill.to_owned(), 1 + rng.below(5) as u8);
            }
        }
        profile.languages.insert(LANGUAGES[rng.below(2)].to_owned());
        if rng.below(3) == 0 {
            profile.languages.insert(LANGUAGES[2].to_owned());
        }
        profile.capacity.insert("web".to_owned(), 2 + rng.below(4) as u32);
        profile.capacity.insert("email".to_owned(), 2 + rng.below(4) as u32);
        let events = state.register_agent(&id, profile);
        must(&mut state, events);
        let events = state.set_presence(&id, Presence::Online, NOW);
        must(&mut state, events);
    }
    for i in 0..WAITING {
        let skills = match rng.below(4) {
            0 => Vec::new(),
            n => vec![SkillRequirement::new(SKILLS[n], 1 + rng.below(3) as u8)],
        };
        let languages = match rng.below(3) {
            0 => Vec::new(),
            n => vec![LANGUAGES[n - 1].to_owned()],
        };
        let conversation = NewConversation {
            id: format!("conv_{i:05}"),
            queue: QUEUES[rng.below(QUEUES.len())].0.to_owned(),
            priority: 1 + rng.below(10) as u8,
            channel: if rng.below(3) == 0 { "email" } else { "web" }.to_owned(),
            skills,
            languages,
        };
        let events = state.enqueue(conversation, NOW + i as i64);
        must(&mut state, events);
    }
    state
}

/// Runs `dispatch` on `state` for about `budget`; returns (calls, decisions) per second.
fn measure(state: &Dispatcher, budget: Duration) -> (f64, f64) {
    let start = Instant::now();
    let mut calls = 0u64;
    let mut decisions = 0u64;
    while start.elapsed() < budget {
        let events = black_box(state.dispatch(black_box(NOW + 1_000)));
        decisions += events.len() as u64;
        calls += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (calls as f64 / secs, decisions as f64 / secs)
}

fn report(case: &str, state: &Dispatcher, budget: Duration) {
    let offers = state.dispatch(NOW + 1_000).len();
    let (calls, decisions) = measure(state, budget);
    println!(
        "{case:<22} {offers:>5} offers/call  {calls:>10.0} calls/s  {decisions:>12.0} decisions/s  {:>9.1} µs/call",
        1e6 / calls
    );
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let cold = setup();
    println!(
        "{AGENTS} agents, {} waiting conversations, {} queues; {seconds} s per case",
        cold.waiting().count(),
        QUEUES.len()
    );
    report("cold start", &cold, budget);

    // Accept every offer, and keep dispatching until nothing moves: every agent is as full as
    // the waiting conversations allow.
    let mut full = cold.clone();
    loop {
        let offers = full.dispatch(NOW + 1_000);
        if offers.is_empty() {
            break;
        }
        apply(&mut full, &offers);
        for event in &offers {
            if let Event::Offered {
                conversation, agent, ..
            } = event
            {
                let events = full.accept(conversation, agent, NOW + 2_000);
                must(&mut full, events);
            }
        }
    }
    println!(
        "(after filling: {} assigned, {} still waiting)",
        full.conversations().count() - full.waiting().count(),
        full.waiting().count()
    );
    report("all full", &full, budget);

    // Free one place: release one of the agents' conversations.
    let mut one = full.clone();
    let some = one
        .conversations()
        .find_map(|c| Some((c.id.clone(), c.status.agent()?.to_owned())));
    if let Some((conversation, agent)) = some {
        let events = one.release(&agent, &conversation, NOW + 3_000);
        must(&mut one, events);
    }
    report("one place free", &one, budget);

    // Worst case: the only free place suits only the last waiting conversation.
    let mut rare = full.clone();
    let last = rare.waiting().last().map(str::to_owned);
    if let Some(last) = last {
        let events = rare.remove(&last, NOW + 3_000);
        apply(&mut rare, &events);
        let queue = QUEUES[0].0;
        let niche = NewConversation {
            id: "conv_niche".to_owned(),
            queue: queue.to_owned(),
            priority: 0,
            channel: "sms".to_owned(),
            skills: Vec::new(),
            languages: Vec::new(),
        };
        let events = rare.enqueue(niche, NOW + 3_000);
        must(&mut rare, events);
        let mut profile = AgentProfile::default();
        profile.capacity.insert("sms".to_owned(), 1);
        let events = rare.register_agent("agt_sms", profile);
        must(&mut rare, events);
        let events = rare.set_presence("agt_sms", Presence::Online, NOW + 3_000);
        must(&mut rare, events);
    }
    report("one place, rare fit", &rare, budget);
}
