//! Events and snapshots as JSON, and inputs no caller should send: nothing panics and the state
//! stays consistent.

mod common;

use common::{World, conv, profile};
use serde_json::json;
use yy_dispatch::{
    AgentProfile, Dispatcher, Event, NewConversation, Presence, QueueConfig, SkillRequirement, Strategy,
    TransferTarget, Verdict, WithdrawReason,
};

const T: i64 = 1_700_000_000_000;

/// SplitMix64, as in the simulation.
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
        self.next() % n.max(1)
    }

    fn name(&mut self, prefix: &str, n: u64) -> String {
        format!("{prefix}{}", self.below(n))
    }

    fn time(&mut self) -> i64 {
        match self.below(6) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => -1,
            _ => T + self.below(100_000) as i64,
        }
    }
}

#[test]
fn an_offer_serialises_compactly_and_reads_back() {
    let mut world = World::default();
    world.queue("general", Strategy::RoundRobin, 15_000);
    world.online_agent("a1", profile(&[("refund", 2)], &["zh"], &[("web", 2)]));
    world.online_agent("a2", profile(&[], &["zh"], &[("web", 2)]));
    world.enqueue(
        NewConversation {
            skills: vec![SkillRequirement::new("refund", 2)],
            ..conv("c1", "general")
        },
        T,
    );
    let events = world.dispatch(T);
    assert_eq!(
        serde_json::to_value(&events[0]).expect("json"),
        json!({
            "type": "offered",
            "conversation": "c1",
            "agent": "a1",
            "queue": "general",
            "strategy": "round_robin",
            "at_ms": T,
            "expires_at_ms": T + 15_000,
            "direct": false,
            "candidates": [
                {"agent": "a1", "reason": "chosen"},
                {"agent": "a2", "reason": "missing_skill", "skill": "refund", "min_level": 2, "level": 0}
            ]
        })
    );
    let back: Event = serde_json::from_value(serde_json::to_value(&events[0]).expect("json")).expect("reads back");
    assert_eq!(back, events[0]);
}

#[test]
fn every_event_kind_round_trips_through_json() {
    let events = vec![
        Event::AgentRegistered {
            agent: "a1".into(),
            profile: profile(&[("refund", 2)], &["zh"], &[("web", 2)]),
        },
        Event::AgentUpdated {
            agent: "a1".into(),
            profile: AgentProfile::default(),
        },
        Event::PresenceChanged {
            agent: "a1".into(),
            presence: Presence::Away,
            at_ms: T,
        },
        Event::QueueConfigured {
            queue: "q".into(),
            config: QueueConfig::new(Strategy::LeastBusy, 1),
        },
        Event::Enqueued {
            conversation: "c1".into(),
            queue: "q".into(),
            priority: 3,
            channel: "web".into(),
            skills: vec![SkillRequirement::new("refund", 1)],
            languages: vec!["zh".into()],
            at_ms: T,
        },
        Event::PriorityChanged {
            conversation: "c1".into(),
            priority: 9,
            at_ms: T,
        },
        Event::Offered {
            conversation: "c1".into(),
            agent: "a1".into(),
            queue: "q".into(),
            strategy: Strategy::LeastBusy,
            at_ms: T,
            expires_at_ms: T + 1,
            direct: true,
            candidates: vec![
                yy_dispatch::Candidate {
                    agent: "a2".into(),
                    verdict: Verdict::NoCapacity { load: 2, capacity: 2 },
                },
                yy_dispatch::Candidate {
                    agent: "a3".into(),
                    verdict: Verdict::DeclinedBefore { times: 2 },
                },
            ],
        },
        Event::OfferRejected {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: T,
        },
        Event::OfferExpired {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: T,
        },
        Event::OfferWithdrawn {
            conversation: "c1".into(),
            agent: "a1".into(),
            reason: WithdrawReason::Profile,
            at_ms: T,
        },
        Event::Assigned {
            conversation: "c1".into(),
            agent: "a1".into(),
            queue: "q".into(),
            at_ms: T,
            waited_ms: 5,
        },
        Event::Released {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: T,
        },
        Event::Removed {
            conversation: "c1".into(),
            agent: None,
            at_ms: T,
        },
        Event::Transferred {
            conversation: "c1".into(),
            from_agent: Some("a1".into()),
            to: TransferTarget::Queue {
                queue: "q".into(),
                skills: vec![],
            },
            at_ms: T,
        },
    ];
    let json = serde_json::to_string(&events).expect("json");
    let back: Vec<Event> = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, events);
    assert!(
        json.contains(r#""to":{"to":"queue","queue":"q","skills":[]}"#),
        "{json}"
    );
}

#[test]
fn a_snapshot_reads_back_equal_and_a_broken_one_is_refused() {
    let mut world = World::default();
    world.queue("general", Strategy::LeastBusy, 10_000);
    world.online_agent("a1", profile(&[], &[], &[("web", 2)]));
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.enqueue(conv("c3", "general"), T + 2);
    world.dispatch(T + 3);
    let events = world.state.accept("c1", "a1", T + 4);
    world.ok(events);
    world.assert_serde_roundtrip();

    let good = serde_json::to_value(&world.state).expect("json");
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut broken = good.clone();
        edit(&mut broken);
        serde_json::from_value::<Dispatcher>(broken).is_err()
    };
    assert!(refused(&|v| v["agents"] = json!([])), "assigned to an unknown agent");
    assert!(refused(&|v| v["queues"] = json!([])), "in an unknown queue");
    assert!(refused(&|v| {
        let first = v["conversations"][0].clone();
        v["conversations"].as_array_mut().expect("array").push(first);
    }));
    assert!(refused(&|v| v["surprise"] = json!(1)), "unknown fields");
    assert!(refused(&|v| v["queues"][0]["recent_assignments"] = json!(vec![T; 21])));
    assert!(!refused(&|_| {}));
}

#[test]
fn applying_arbitrary_events_never_panics_or_breaks_the_indices() {
    let mut rng = Rng(42);
    let mut state = Dispatcher::new();
    for _ in 0..20_000 {
        let conversation = rng.name("c", 6);
        let agent = rng.name("a", 4);
        let queue = rng.name("q", 3);
        let at_ms = rng.time();
        let event = match rng.below(14) {
            0 => Event::AgentRegistered {
                agent,
                profile: profile(
                    &[("s", 1 + rng.below(5) as u8)],
                    &["zh"],
                    &[("web", rng.below(3) as u32)],
                ),
            },
            1 => Event::AgentUpdated {
                agent,
                profile: profile(&[], &[], &[("web", rng.below(3) as u32), ("email", 1)]),
            },
            2 => Event::PresenceChanged {
                agent,
                presence: [Presence::Online, Presence::Away, Presence::Offline][rng.below(3) as usize],
                at_ms,
            },
            3 => Event::QueueConfigured {
                queue,
                config: QueueConfig::new(Strategy::RoundRobin, rng.next()),
            },
            4 => Event::Enqueued {
                conversation,
                queue,
                priority: rng.below(256) as u8,
                channel: ["web", "email"][rng.below(2) as usize].into(),
                skills: vec![],
                languages: vec![],
                at_ms,
            },
            5 => Event::PriorityChanged {
                conversation,
                priority: rng.below(256) as u8,
                at_ms,
            },
            6 => Event::Offered {
                conversation,
                agent,
                queue,
                strategy: Strategy::LeastBusy,
                at_ms,
                expires_at_ms: rng.time(),
                direct: rng.below(2) == 0,
                candidates: vec![],
            },
            7 => Event::OfferRejected {
                conversation,
                agent,
                at_ms,
            },
            8 => Event::OfferExpired {
                conversation,
                agent,
                at_ms,
            },
            9 => Event::OfferWithdrawn {
                conversation,
                agent,
                reason: WithdrawReason::Presence,
                at_ms,
            },
            10 => Event::Assigned {
                conversation,
                agent,
                queue,
                at_ms,
                waited_ms: 0,
            },
            11 => Event::Released {
                conversation,
                agent,
                at_ms,
            },
            12 => Event::Removed {
                conversation,
                agent: None,
                at_ms,
            },
            _ => Event::Transferred {
                conversation,
                from_agent: None,
                to: if rng.below(2) == 0 {
                    TransferTarget::Agent { agent }
                } else {
                    TransferTarget::Queue { queue, skills: vec![] }
                },
                at_ms,
            },
        };
        state.apply(&event);
        // Arbitrary offers may ignore capacity (apply records facts; commands check them),
        // but the structure must hold.
        let broken: Vec<String> = state
            .violations()
            .into_iter()
            .filter(|v| !v.contains("exceed capacity"))
            .collect();
        assert!(broken.is_empty(), "after {event:?}: {broken:#?}");
        let now = rng.time();
        let offers = state.dispatch(now);
        for id in ["c0", "c1", "c2"] {
            let _ = state.position(id, now);
        }
        let _ = state.next_expiry();
        let _ = offers;
    }
    let json = serde_json::to_string(&state).expect("json");
    assert_eq!(serde_json::from_str::<Dispatcher>(&json).expect("reads back"), state);
}

#[test]
fn commands_with_extreme_input_never_panic_and_keep_every_invariant() {
    let mut rng = Rng(7);
    let mut world = World::default();
    let names = ["a", "", "\u{0}", "易歪歪", "x", "y"];
    let long = "n".repeat(200);
    let pick = |rng: &mut Rng| -> String {
        match rng.below(8) {
            0 => long.clone(),
            n => names[(n as usize) % names.len()].to_owned(),
        }
    };
    for _ in 0..5_000 {
        let now = rng.time();
        let (a, c, q) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let capacity = [0, 1, 2, u32::MAX][rng.below(4) as usize];
        let p = profile(&[("s", rng.below(8) as u8)], &["zh"], &[("web", capacity), (&q, 1)]);
        let result = match rng.below(12) {
            0 => world.state.register_agent(&a, p),
            1 => world.state.update_agent(&a, p, now),
            2 => world.state.set_presence(&a, Presence::Online, now),
            3 => world
                .state
                .configure_queue(&q, QueueConfig::new(Strategy::LeastBusy, rng.next() % 100_000)),
            4 => world.state.enqueue(
                NewConversation {
                    id: c,
                    queue: q,
                    priority: rng.below(256) as u8,
                    channel: ["web", "email", ""][rng.below(3) as usize].into(),
                    skills: vec![SkillRequirement::new("s", rng.below(8) as u8)],
                    languages: vec![pick(&mut rng)],
                },
                now,
            ),
            5 => world.state.accept(&c, &a, now),
            6 => world.state.reject(&c, &a, now),
            7 => Ok(world.state.offer_expired(&c, &a, now)),
            8 => world.state.release(&a, &c, now),
            9 => world.state.transfer(&c, TransferTarget::Agent { agent: a }, now),
            10 => world.state.set_priority(&c, rng.below(256) as u8, now),
            _ => Ok(world.state.remove(&c, now)),
        };
        if let Ok(events) = result {
            world.record(events);
        }
        world.dispatch(now);
        let _ = world.state.position("a", now);
        world.assert_sound(true);
    }
    world.assert_serde_roundtrip();
}
