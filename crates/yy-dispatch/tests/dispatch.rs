//! Dispatch: order, strategies, the turn rule, timeouts, explanations, positions.

mod common;

use common::{World, conv, offers, pairs, profile, skill};
use yy_dispatch::{AgentProfile, Candidate, Event, NewConversation, Presence, QueuePosition, Strategy, Verdict};

const T: i64 = 1_700_000_000_000;
const TIMEOUT: u64 = 20_000;

fn web(n: u32) -> AgentProfile {
    profile(&[], &[], &[("web", n)])
}

fn world(strategy: Strategy, agents: &[(&str, AgentProfile)]) -> World {
    let mut world = World::default();
    world.queue("general", strategy, TIMEOUT);
    for (id, p) in agents {
        world.online_agent(id, p.clone());
    }
    world
}

fn accept(world: &mut World, conversation: &str, agent: &str, now: i64) {
    let events = world.state.accept(conversation, agent, now);
    world.ok(events);
}

fn candidates(events: &[Event], conversation: &str) -> Vec<(String, Verdict)> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Offered {
                conversation: c,
                candidates,
                ..
            } if c == conversation => Some(
                candidates
                    .iter()
                    .map(|Candidate { agent, verdict }| (agent.clone(), verdict.clone()))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn serves_priority_then_enqueue_time_then_id() {
    let mut world = world(Strategy::LeastBusy, &[]);
    world.enqueue(conv("c-late", "general"), T + 5);
    world.enqueue(conv("c-b", "general"), T);
    world.enqueue(conv("c-a", "general"), T);
    world.enqueue(
        NewConversation {
            priority: 9,
            ..conv("c-urgent", "general")
        },
        T + 10,
    );
    assert_eq!(
        world.state.waiting().collect::<Vec<_>>(),
        ["c-urgent", "c-a", "c-b", "c-late"]
    );
    world.online_agent("a1", web(2));
    assert_eq!(
        offers(&world.dispatch(T + 20)),
        pairs(&[("c-urgent", "a1"), ("c-a", "a1")])
    );
    world.assert_sound(true);
}

#[test]
fn pending_offers_count_against_capacity() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(2))]);
    for i in 0..5 {
        world.enqueue(conv(&format!("c{i}"), "general"), T + i);
    }
    assert_eq!(world.dispatch(T).len(), 2);
    assert!(world.dispatch(T + 1).is_empty(), "offers already fill the agent");
    accept(&mut world, "c0", "a1", T + 2);
    assert!(world.dispatch(T + 2).is_empty(), "accepting does not free anything");
    world.assert_sound(true);
}

#[test]
fn channels_are_counted_separately() {
    let mut world = world(
        Strategy::LeastBusy,
        &[("a1", profile(&[], &[], &[("web", 1), ("email", 2)]))],
    );
    world.enqueue(conv("w1", "general"), T);
    world.enqueue(conv("w2", "general"), T + 1);
    for i in 0..3 {
        world.enqueue(
            NewConversation {
                channel: "email".into(),
                ..conv(&format!("e{i}"), "general")
            },
            T + 2 + i,
        );
    }
    world.enqueue(
        NewConversation {
            channel: "phone".into(),
            ..conv("p1", "general")
        },
        T,
    );
    let events = world.dispatch(T + 10);
    assert_eq!(offers(&events), pairs(&[("w1", "a1"), ("e0", "a1"), ("e1", "a1")]));
    world.assert_sound(true);
}

#[test]
fn least_busy_prefers_the_smaller_share_of_capacity_then_the_longest_idle() {
    // a1: 1 of 2 in use; a2: 1 of 4; a3: nothing, but only 1 of capacity.
    let mut world = world(Strategy::LeastBusy, &[("a1", web(2)), ("a2", web(4)), ("a3", web(1))]);
    world.enqueue(conv("x1", "general"), T);
    world.enqueue(conv("x2", "general"), T);
    let direct = |world: &mut World, c: &str, a: &str, now: i64| {
        let events = world
            .state
            .transfer(c, yy_dispatch::TransferTarget::Agent { agent: a.into() }, now);
        world.ok(events);
        accept(world, c, a, now);
    };
    direct(&mut world, "x1", "a1", T + 1);
    direct(&mut world, "x2", "a2", T + 2);
    world.enqueue(conv("c1", "general"), T + 10);
    let events = world.dispatch(T + 10);
    assert_eq!(offers(&events), pairs(&[("c1", "a3")]), "0 of 1 beats 1 of 4");
    assert_eq!(
        candidates(&events, "c1"),
        vec![
            ("a1".into(), Verdict::LostTieBreak),
            ("a2".into(), Verdict::LostTieBreak),
            ("a3".into(), Verdict::Chosen),
        ]
    );
    world.enqueue(conv("c2", "general"), T + 11);
    assert_eq!(
        offers(&world.dispatch(T + 11)),
        pairs(&[("c2", "a2")]),
        "1 of 4 beats 1 of 2"
    );
    world.assert_sound(true);
}

#[test]
fn least_busy_ties_go_to_the_longest_idle_and_never_assigned_first() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1)), ("a3", web(1))]);
    // a2 took and finished one at T+100, a3 at T+50; a1 never had one.
    for (c, a, at) in [("x2", "a2", T + 100), ("x3", "a3", T + 50)] {
        world.enqueue(conv(c, "general"), at);
        let events = world
            .state
            .transfer(c, yy_dispatch::TransferTarget::Agent { agent: a.into() }, at);
        world.ok(events);
        accept(&mut world, c, a, at);
        let events = world.state.release(a, c, at);
        world.ok(events);
    }
    for (i, c) in ["c1", "c2", "c3"].iter().enumerate() {
        world.enqueue(conv(c, "general"), T + 200 + i as i64);
    }
    assert_eq!(
        offers(&world.dispatch(T + 300)),
        pairs(&[("c1", "a1"), ("c2", "a3"), ("c3", "a2")])
    );
    world.assert_sound(true);
}

#[test]
fn round_robin_rotates_by_agent_id_from_the_last_offer() {
    let mut world = world(Strategy::RoundRobin, &[("a1", web(5)), ("a2", web(5)), ("a3", web(5))]);
    for i in 0..4 {
        world.enqueue(conv(&format!("c{i}"), "general"), T + i);
    }
    assert_eq!(
        offers(&world.dispatch(T + 10)),
        pairs(&[("c0", "a1"), ("c1", "a2"), ("c2", "a3"), ("c3", "a1")])
    );
    // The rotation continues across calls, from the state.
    world.enqueue(conv("c4", "general"), T + 20);
    assert_eq!(offers(&world.dispatch(T + 20)), pairs(&[("c4", "a2")]));
    assert_eq!(
        world.state.queue("general").and_then(|q| q.last_offered.as_deref()),
        Some("a2")
    );
    world.assert_sound(true);
}

#[test]
fn round_robin_and_least_busy_choose_differently() {
    let run = |strategy| {
        let mut world = world(strategy, &[("a1", web(5)), ("a2", web(5)), ("a3", web(5))]);
        for (i, c) in ["c0", "c1", "c2"].iter().enumerate() {
            world.enqueue(conv(c, "general"), T + i as i64);
        }
        assert_eq!(
            offers(&world.dispatch(T + 10)),
            pairs(&[("c0", "a1"), ("c1", "a2"), ("c2", "a3")]),
            "{strategy:?}: equal agents take turns either way"
        );
        for (c, a) in [("c0", "a1"), ("c1", "a2"), ("c2", "a3")] {
            accept(&mut world, c, a, T + 20);
        }
        // a3 finishes: least busy goes back to a3, round robin continues after a3 with a1.
        let events = world.state.release("a3", "c2", T + 30);
        world.ok(events);
        world.enqueue(conv("c3", "general"), T + 40);
        let chosen = offers(&world.dispatch(T + 40));
        world.assert_sound(true);
        chosen
    };
    assert_eq!(run(Strategy::LeastBusy), pairs(&[("c3", "a3")]));
    assert_eq!(run(Strategy::RoundRobin), pairs(&[("c3", "a1")]));
}

#[test]
fn an_expired_offer_passes_to_the_next_agent() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("c1", "general"), T);
    assert_eq!(offers(&world.dispatch(T)), pairs(&[("c1", "a1")]));
    let due = world.state.next_expiry().expect("a pending offer");
    assert_eq!(due, T + TIMEOUT as i64);
    let events = world.state.offer_expired("c1", "a1", due);
    world.ok(Ok(events));
    let events = world.dispatch(due);
    assert_eq!(offers(&events), pairs(&[("c1", "a2")]));
    assert_eq!(
        candidates(&events, "c1"),
        vec![
            ("a1".into(), Verdict::DeclinedBefore { times: 1 }),
            ("a2".into(), Verdict::Chosen),
        ]
    );
    world.assert_sound(true);
    // a2 lets it expire too: everyone had a turn, so the round starts again with a1.
    let events = world.state.offer_expired("c1", "a2", due + TIMEOUT as i64);
    world.ok(Ok(events));
    assert_eq!(offers(&world.dispatch(due + TIMEOUT as i64)), pairs(&[("c1", "a1")]));
    world.assert_sound(true);
}

#[test]
fn a_rejected_conversation_waits_for_an_untried_busy_agent() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("busy", "general"), T - 1);
    world.enqueue(conv("c1", "general"), T);
    assert_eq!(offers(&world.dispatch(T)), pairs(&[("busy", "a1"), ("c1", "a2")]));
    accept(&mut world, "busy", "a1", T);
    let events = world.state.reject("c1", "a2", T + 1);
    world.ok(events);
    assert!(world.dispatch(T + 1).is_empty(), "a1 has not had a turn and is full");
    world.assert_sound(true);
    let events = world.state.release("a1", "busy", T + 2);
    world.ok(events);
    assert_eq!(offers(&world.dispatch(T + 2)), pairs(&[("c1", "a1")]));
    world.assert_sound(true);
}

#[test]
fn an_agent_going_offline_lets_the_decliner_have_it_again() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("busy", "general"), T - 1);
    world.enqueue(conv("c1", "general"), T);
    world.dispatch(T);
    accept(&mut world, "busy", "a1", T);
    let events = world.state.reject("c1", "a2", T + 1);
    world.ok(events);
    let events = world.state.set_presence("a1", Presence::Offline, T + 2);
    world.ok(events);
    assert_eq!(offers(&world.dispatch(T + 2)), pairs(&[("c1", "a2")]));
    world.assert_sound(true);
}

#[test]
fn explanations_name_every_reason() {
    let mut world = world(Strategy::LeastBusy, &[]);
    let agents = [
        ("a-away", web(3), Presence::Away),
        (
            "a-chosen",
            profile(&[("refund", 3)], &["zh"], &[("web", 2)]),
            Presence::Online,
        ),
        (
            "a-email",
            profile(&[("refund", 3)], &["zh"], &[("email", 2)]),
            Presence::Online,
        ),
        (
            "a-en",
            profile(&[("refund", 3)], &["en"], &[("web", 2)]),
            Presence::Online,
        ),
        (
            "a-junior",
            profile(&[("refund", 1)], &["zh"], &[("web", 2)]),
            Presence::Online,
        ),
        ("a-off", web(3), Presence::Offline),
        (
            "a-tie",
            profile(&[("refund", 5)], &["zh"], &[("web", 2)]),
            Presence::Online,
        ),
    ];
    for (id, p, presence) in agents {
        let events = world.state.register_agent(id, p);
        world.ok(events);
        let events = world.state.set_presence(id, presence, T);
        world.ok(events);
    }
    let mut other_queue = web(1);
    other_queue.queues.insert("vip".into());
    world.online_agent("a-vip-only", other_queue);
    world.enqueue(
        NewConversation {
            skills: vec![skill("refund", 2)],
            languages: vec!["zh".into()],
            ..conv("c1", "general")
        },
        T,
    );
    let events = world.dispatch(T);
    assert_eq!(
        candidates(&events, "c1"),
        vec![
            ("a-away".into(), Verdict::Away),
            ("a-chosen".into(), Verdict::Chosen),
            ("a-email".into(), Verdict::NoCapacity { load: 0, capacity: 0 }),
            ("a-en".into(), Verdict::Language),
            (
                "a-junior".into(),
                Verdict::MissingSkill {
                    skill: "refund".into(),
                    min_level: 2,
                    level: 1
                }
            ),
            ("a-off".into(), Verdict::Offline),
            ("a-tie".into(), Verdict::LostTieBreak),
        ],
        "agents outside the queue are not candidates"
    );
    let json = serde_json::to_value(&events).expect("json");
    assert_eq!(
        json[0]["candidates"][4],
        serde_json::json!({"agent": "a-junior", "reason": "missing_skill", "skill": "refund", "min_level": 2, "level": 1})
    );
    world.assert_sound(true);
}

#[test]
fn a_full_agent_is_explained_with_load_and_capacity() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    let events = world.dispatch(T);
    assert_eq!(
        candidates(&events, "c2"),
        vec![
            ("a1".into(), Verdict::NoCapacity { load: 1, capacity: 1 }),
            ("a2".into(), Verdict::Chosen),
        ]
    );
}

#[test]
fn languages_accept_any_listed_and_skills_need_every_level() {
    let mut world = world(
        Strategy::LeastBusy,
        &[
            ("a1", profile(&[("refund", 5)], &["en"], &[("web", 1)])),
            ("a2", profile(&[("refund", 2), ("billing", 2)], &["ja"], &[("web", 1)])),
        ],
    );
    world.enqueue(
        NewConversation {
            skills: vec![skill("refund", 2), skill("billing", 1)],
            languages: vec!["zh".into(), "ja".into()],
            ..conv("c1", "general")
        },
        T,
    );
    assert_eq!(offers(&world.dispatch(T)), pairs(&[("c1", "a2")]));
}

#[test]
fn queues_share_agents_in_global_serving_order() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(2))]);
    world.queue("vip", Strategy::RoundRobin, TIMEOUT);
    world.enqueue(conv("g1", "general"), T);
    world.enqueue(
        NewConversation {
            priority: 8,
            ..conv("v1", "vip")
        },
        T + 100,
    );
    world.enqueue(conv("v2", "vip"), T + 50);
    assert_eq!(offers(&world.dispatch(T + 200)), pairs(&[("v1", "a1"), ("g1", "a1")]));
    world.assert_sound(true);
}

#[test]
fn agents_only_serve_their_queues() {
    let mut vip = web(3);
    vip.queues.insert("vip".into());
    let mut world = world(Strategy::LeastBusy, &[("a-vip", vip)]);
    world.queue("vip", Strategy::LeastBusy, TIMEOUT);
    world.enqueue(conv("g1", "general"), T);
    world.enqueue(conv("v1", "vip"), T + 1);
    assert_eq!(offers(&world.dispatch(T + 2)), pairs(&[("v1", "a-vip")]));
    world.assert_sound(true);
}

#[test]
fn a_rejected_conversation_keeps_its_place_ahead_of_later_ones() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.dispatch(T + 2);
    world.enqueue(conv("c3", "general"), T + 3);
    let events = world.state.reject("c1", "a1", T + 4);
    world.ok(events);
    assert_eq!(world.state.waiting().collect::<Vec<_>>(), ["c1", "c3"]);
    // a1 declined c1 and a2 is full but has not had a turn: c3 goes to a1 meanwhile.
    assert_eq!(offers(&world.dispatch(T + 5)), pairs(&[("c3", "a1")]));
    world.assert_sound(true);
}

#[test]
fn position_counts_waiting_conversations_ahead_in_the_same_queue() {
    let mut world = world(Strategy::LeastBusy, &[]);
    world.queue("vip", Strategy::LeastBusy, TIMEOUT);
    for (i, c) in ["c1", "c2", "c3"].iter().enumerate() {
        world.enqueue(conv(c, "general"), T + i as i64);
    }
    world.enqueue(conv("v1", "vip"), T - 100);
    let position = |w: &World, c: &str| w.state.position(c, T + 10).map(|p| p.position);
    assert_eq!(position(&world, "c1"), Some(1));
    assert_eq!(position(&world, "c3"), Some(3));
    assert_eq!(position(&world, "v1"), Some(1));
    assert_eq!(position(&world, "nope"), None);
    assert_eq!(
        world.state.position("c3", T + 10),
        Some(QueuePosition {
            position: 3,
            estimated_wait_secs: None
        }),
        "no assignment yet: no estimate"
    );
    let mut general_only = web(1);
    general_only.queues.insert("general".into());
    world.online_agent("a1", general_only);
    world.dispatch(T + 10);
    assert_eq!(position(&world, "c1"), None, "offered: no longer waiting");
    assert_eq!(position(&world, "c3"), Some(2));
}

#[test]
fn the_estimate_follows_recent_assignment_pace() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1))]);
    // Assign one conversation every 60 s for 5 minutes.
    for i in 0..5 {
        let now = T + i * 60_000;
        world.enqueue(conv(&format!("x{i}"), "general"), now);
        world.dispatch(now);
        accept(&mut world, &format!("x{i}"), "a1", now);
        let events = world.state.release("a1", &format!("x{i}"), now + 1);
        world.ok(events);
    }
    let last = T + 4 * 60_000;
    let events = world.state.set_presence("a1", Presence::Away, last);
    world.ok(events);
    for i in 0..4 {
        world.enqueue(conv(&format!("w{i}"), "general"), last + i);
    }
    // Five assignments in the 5 minutes up to now: one a minute.
    let now = T + 5 * 60_000;
    assert_eq!(
        world.state.position("w0", now),
        Some(QueuePosition {
            position: 1,
            estimated_wait_secs: Some(60)
        })
    );
    assert_eq!(
        world.state.position("w3", now).and_then(|p| p.estimated_wait_secs),
        Some(240)
    );
    // Nothing assigned for another 5 minutes: the pace halves.
    let later = T + 10 * 60_000;
    assert_eq!(
        world.state.position("w0", later).and_then(|p| p.estimated_wait_secs),
        Some(120)
    );
    // Clock behind the assignments: no estimate rather than nonsense.
    assert_eq!(
        world.state.position("w0", T - 1).and_then(|p| p.estimated_wait_secs),
        None
    );
}

#[test]
fn the_estimate_window_keeps_the_latest_assignments() {
    let mut world = world(Strategy::LeastBusy, &[("a1", web(1))]);
    for i in 0..(yy_dispatch::THROUGHPUT_WINDOW as i64 + 5) {
        let now = T + i * 1_000;
        let id = format!("x{i}");
        world.enqueue(conv(&id, "general"), now);
        world.dispatch(now);
        accept(&mut world, &id, "a1", now);
        let events = world.state.release("a1", &id, now);
        world.ok(events);
    }
    let queue = world.state.queue("general").expect("queue");
    assert_eq!(queue.recent_assignments.len(), yy_dispatch::THROUGHPUT_WINDOW);
    assert_eq!(queue.recent_assignments.front(), Some(&(T + 5_000)));
    world.assert_sound(true);
}

#[test]
fn nothing_to_do_is_cheap_and_empty() {
    let mut world = world(Strategy::LeastBusy, &[]);
    assert!(world.dispatch(T).is_empty());
    world.enqueue(conv("c1", "general"), T);
    assert!(world.dispatch(T).is_empty(), "no agents");
    world.online_agent("a1", profile(&[], &[], &[("email", 3)]));
    assert!(world.dispatch(T).is_empty(), "no capacity on web");
    world.assert_sound(true);
}
