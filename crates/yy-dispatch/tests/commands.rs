//! Given events, when a command, then events or a rejection — for every command.

mod common;

use common::{World, conv, offers, pairs, profile, skill};
use yy_dispatch::{
    AgentProfile, Event, MAX_CAPACITY, MAX_OFFER_TIMEOUT_MS, NewConversation, Presence, QueueConfig, Rejection, Status,
    Strategy, TransferTarget, WithdrawReason,
};

const T: i64 = 1_700_000_000_000;
const TIMEOUT: u64 = 30_000;

fn web(n: u32) -> AgentProfile {
    profile(&[], &[], &[("web", n)])
}

/// A queue `general` (least busy, 30 s offers) and the given agents online.
fn world(agents: &[(&str, AgentProfile)]) -> World {
    let mut world = World::default();
    world.queue("general", Strategy::LeastBusy, TIMEOUT);
    for (id, p) in agents {
        world.online_agent(id, p.clone());
    }
    world
}

/// One conversation `c1` offered to `a1`.
fn offered_to_a1() -> World {
    let mut world = world(&[("a1", web(2))]);
    world.enqueue(conv("c1", "general"), T);
    assert_eq!(offers(&world.dispatch(T)), pairs(&[("c1", "a1")]));
    world
}

/// One conversation `c1` assigned to `a1`.
fn assigned_to_a1() -> World {
    let mut world = offered_to_a1();
    let events = world.state.accept("c1", "a1", T + 1_000);
    world.ok(events);
    world
}

fn invalid_field(result: Result<Vec<Event>, Rejection>) -> String {
    match result {
        Err(Rejection::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    }
}

// --- register_agent -------------------------------------------------------------------------

#[test]
fn register_agent_records_an_offline_agent() {
    let world = World::default();
    let p = profile(&[("refund", 3)], &["zh"], &[("web", 3), ("email", 5)]);
    let events = world.state.register_agent("a1", p.clone()).expect("registered");
    assert_eq!(
        events,
        vec![Event::AgentRegistered {
            agent: "a1".into(),
            profile: p
        }]
    );
    let world = World::given(events);
    let agent = world.state.agent("a1").expect("agent");
    assert_eq!(agent.presence, Presence::Offline);
    assert_eq!(agent.last_activity_ms, None);
    assert!(agent.load.is_empty());
}

#[test]
fn register_agent_refuses_a_second_registration() {
    let world = world(&[("a1", web(1))]);
    assert_eq!(
        world.state.register_agent("a1", web(2)),
        Err(Rejection::AgentExists { agent: "a1".into() })
    );
}

#[test]
fn register_agent_refuses_invalid_profiles() {
    let state = World::default().state;
    assert_eq!(invalid_field(state.register_agent("", web(1))), "agent");
    assert_eq!(invalid_field(state.register_agent("a\n1", web(1))), "agent");
    assert_eq!(invalid_field(state.register_agent(&"a".repeat(129), web(1))), "agent");
    assert_eq!(
        invalid_field(state.register_agent("a1", profile(&[("refund", 0)], &[], &[]))),
        "profile.skills[refund]"
    );
    assert_eq!(
        invalid_field(state.register_agent("a1", profile(&[("refund", 6)], &[], &[]))),
        "profile.skills[refund]"
    );
    assert_eq!(
        invalid_field(state.register_agent("a1", profile(&[], &[], &[("web", MAX_CAPACITY + 1)]))),
        "profile.capacity[web]"
    );
    assert_eq!(
        invalid_field(state.register_agent("a1", profile(&[], &[""], &[]))),
        "profile.languages"
    );
    let many: Vec<(String, u8)> = (0..65).map(|i| (format!("s{i}"), 1)).collect();
    let many = AgentProfile {
        skills: many.into_iter().collect(),
        ..AgentProfile::default()
    };
    assert_eq!(invalid_field(state.register_agent("a1", many)), "profile.skills");
}

// --- update_agent ---------------------------------------------------------------------------

#[test]
fn update_agent_records_the_new_profile_and_nothing_when_unchanged() {
    let world = world(&[("a1", web(1))]);
    assert_eq!(world.state.update_agent("a1", web(1), T), Ok(vec![]));
    assert_eq!(
        world.state.update_agent("a1", web(4), T),
        Ok(vec![Event::AgentUpdated {
            agent: "a1".into(),
            profile: web(4)
        }])
    );
    assert_eq!(
        world.state.update_agent("zz", web(4), T),
        Err(Rejection::UnknownAgent { agent: "zz".into() })
    );
}

#[test]
fn update_agent_withdraws_offers_that_no_longer_fit_but_keeps_direct_ones() {
    let mut world = world(&[("a1", profile(&[("refund", 3)], &[], &[("web", 3)]))]);
    world.enqueue(
        NewConversation {
            skills: vec![skill("refund", 2)],
            ..conv("c1", "general")
        },
        T,
    );
    world.dispatch(T);
    // c2 reaches a1 by a transfer, which ignores skills, so losing them keeps that offer.
    world.enqueue(conv("c2", "general"), T + 1);
    let events = world
        .state
        .transfer("c2", TransferTarget::Agent { agent: "a1".into() }, T + 1);
    world.ok(events);
    let events = world
        .state
        .update_agent("a1", profile(&[("refund", 1)], &[], &[("web", 3)]), T + 5)
        .expect("updated");
    assert_eq!(
        events.first(),
        Some(&Event::OfferWithdrawn {
            conversation: "c1".into(),
            agent: "a1".into(),
            reason: WithdrawReason::Profile,
            at_ms: T + 5
        })
    );
    assert_eq!(events.len(), 2);
    world.record(events);
    assert_eq!(
        world.state.conversation("c1").map(|c| &c.status),
        Some(&Status::Waiting)
    );
    assert!(matches!(
        world.state.conversation("c2").map(|c| &c.status),
        Some(Status::Offered { direct: true, .. })
    ));
    world.assert_sound(false);
}

#[test]
fn lowering_capacity_withdraws_the_newest_offers_and_keeps_assignments() {
    let mut world = world(&[("a1", web(4))]);
    for (i, id) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        world.enqueue(conv(id, "general"), T + i as i64);
    }
    world.dispatch(T);
    for id in ["c1", "c2"] {
        let events = world.state.accept(id, "a1", T + 10);
        world.ok(events);
    }
    // c3 and c4 are offered at the same time; withdrawal goes by (offered at, id), newest last.
    let events = world.state.update_agent("a1", web(1), T + 20).expect("updated");
    world.capacity_lowered = true;
    let withdrawn: Vec<_> = events.iter().filter_map(Event::conversation).collect();
    assert_eq!(withdrawn, ["c3", "c4"]);
    world.record(events);
    let agent = world.state.agent("a1").expect("agent");
    assert_eq!(agent.assigned.len(), 2, "assignments stay above the lowered capacity");
    assert!(agent.offered.is_empty());
    assert!(world.dispatch(T + 30).is_empty(), "no offers while above capacity");
    world.assert_sound(true);
    let events = world.state.release("a1", "c1", T + 40);
    world.ok(events);
    assert!(world.dispatch(T + 40).is_empty(), "still at capacity 1 with c2");
    let events = world.state.release("a1", "c2", T + 50);
    world.ok(events);
    assert_eq!(offers(&world.dispatch(T + 50)), pairs(&[("c3", "a1")]));
    world.assert_sound(true);
}

#[test]
fn lowering_capacity_keeps_offers_that_still_fit() {
    let mut world = world(&[("a1", web(3))]);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.dispatch(T);
    let events = world.state.update_agent("a1", web(2), T + 5).expect("updated");
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn leaving_a_queue_withdraws_its_offers() {
    let mut world = world(&[("a1", web(3))]);
    world.enqueue(conv("c1", "general"), T);
    world.dispatch(T);
    let mut p = web(3);
    p.queues.insert("vip".into());
    let events = world.state.update_agent("a1", p, T + 1).expect("updated");
    assert!(matches!(
        events.first(),
        Some(Event::OfferWithdrawn {
            reason: WithdrawReason::Profile,
            ..
        })
    ));
}

// --- set_presence ---------------------------------------------------------------------------

#[test]
fn set_presence_records_the_change_once() {
    let mut world = World::default();
    let events = world.state.register_agent("a1", web(1));
    world.ok(events);
    let events = world.state.set_presence("a1", Presence::Online, T).expect("changed");
    assert_eq!(
        events,
        vec![Event::PresenceChanged {
            agent: "a1".into(),
            presence: Presence::Online,
            at_ms: T
        }]
    );
    world.record(events);
    assert_eq!(world.state.set_presence("a1", Presence::Online, T + 1), Ok(vec![]));
    assert_eq!(
        world.state.set_presence("zz", Presence::Away, T),
        Err(Rejection::UnknownAgent { agent: "zz".into() })
    );
}

#[test]
fn going_away_withdraws_offers_and_keeps_assignments() {
    let mut world = world(&[("a1", web(3))]);
    world.enqueue(conv("c0", "general"), T - 10);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.dispatch(T);
    let events = world.state.accept("c0", "a1", T + 1);
    world.ok(events);
    let events = world.state.set_presence("a1", Presence::Away, T + 2).expect("changed");
    let kinds: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::OfferWithdrawn {
                conversation, reason, ..
            } => format!("withdrawn {conversation} {reason:?}"),
            Event::PresenceChanged { presence, .. } => format!("presence {presence:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["withdrawn c1 Presence", "withdrawn c2 Presence", "presence Away"]
    );
    world.record(events);
    let agent = world.state.agent("a1").expect("agent");
    assert_eq!(agent.assigned.iter().collect::<Vec<_>>(), ["c0"]);
    assert!(agent.offered.is_empty());
    assert_eq!(world.state.waiting().collect::<Vec<_>>(), ["c1", "c2"]);
    // A withdrawal is not a refusal: back online, the same agent is offered them again.
    let events = world.state.set_presence("a1", Presence::Online, T + 3);
    world.ok(events);
    assert_eq!(offers(&world.dispatch(T + 3)), pairs(&[("c1", "a1"), ("c2", "a1")]));
    world.assert_sound(true);
}

// --- configure_queue ------------------------------------------------------------------------

#[test]
fn configure_queue_creates_and_updates() {
    let mut world = World::default();
    let config = QueueConfig::new(Strategy::RoundRobin, 10_000);
    let events = world.state.configure_queue("vip", config).expect("configured");
    assert_eq!(
        events,
        vec![Event::QueueConfigured {
            queue: "vip".into(),
            config
        }]
    );
    world.record(events);
    assert_eq!(world.state.configure_queue("vip", config), Ok(vec![]));
    world.enqueue(conv("c1", "vip"), T);
    let changed = QueueConfig::new(Strategy::LeastBusy, 5_000);
    let events = world.state.configure_queue("vip", changed);
    world.ok(events);
    let queue = world.state.queue("vip").expect("queue");
    assert_eq!(queue.config, changed);
    assert_eq!(
        queue.waiting().collect::<Vec<_>>(),
        ["c1"],
        "waiting conversations stay"
    );
}

#[test]
fn configure_queue_refuses_bad_settings() {
    let state = World::default().state;
    let ok = QueueConfig::new(Strategy::LeastBusy, 1_000);
    assert_eq!(invalid_field(state.configure_queue("", ok)), "queue");
    for timeout in [0, MAX_OFFER_TIMEOUT_MS + 1] {
        assert_eq!(
            invalid_field(state.configure_queue("q", QueueConfig::new(Strategy::LeastBusy, timeout))),
            "config.offer_timeout_ms"
        );
    }
}

// --- enqueue --------------------------------------------------------------------------------

#[test]
fn enqueue_records_normalised_requirements() {
    let world = world(&[]);
    let events = world
        .state
        .enqueue(
            NewConversation {
                skills: vec![skill("refund", 2), skill("billing", 1)],
                languages: vec!["zh".into(), "en".into(), "zh".into()],
                ..conv("c1", "general")
            },
            T,
        )
        .expect("enqueued");
    assert_eq!(
        events,
        vec![Event::Enqueued {
            conversation: "c1".into(),
            queue: "general".into(),
            priority: 5,
            channel: "web".into(),
            skills: vec![skill("billing", 1), skill("refund", 2)],
            languages: vec!["en".into(), "zh".into()],
            at_ms: T
        }]
    );
    let mut world = world;
    world.record(events);
    assert_eq!(world.state.waiting().collect::<Vec<_>>(), ["c1"]);
}

#[test]
fn enqueue_refuses_unknown_queues_repeats_and_bad_fields() {
    let mut world = world(&[]);
    world.enqueue(conv("c1", "general"), T);
    assert_eq!(
        world.state.enqueue(conv("c2", "nope"), T),
        Err(Rejection::UnknownQueue { queue: "nope".into() })
    );
    assert_eq!(
        world.state.enqueue(conv("c1", "general"), T),
        Err(Rejection::AlreadyQueued {
            conversation: "c1".into()
        })
    );
    let bad = |c: NewConversation| invalid_field(world.state.enqueue(c, T));
    assert_eq!(bad(conv("", "general")), "conversation");
    assert_eq!(
        bad(NewConversation {
            channel: String::new(),
            ..conv("c2", "general")
        }),
        "channel"
    );
    assert_eq!(
        bad(NewConversation {
            skills: vec![skill("refund", 2), skill("refund", 3)],
            ..conv("c2", "general")
        }),
        "skills"
    );
    assert_eq!(
        bad(NewConversation {
            skills: vec![skill("refund", 9)],
            ..conv("c2", "general")
        }),
        "skills[refund].min_level"
    );
}

// --- set_priority ---------------------------------------------------------------------------

#[test]
fn set_priority_moves_a_waiting_conversation_and_keeps_its_time() {
    let mut world = world(&[]);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.enqueue(conv("c3", "general"), T + 2);
    let events = world.state.set_priority("c3", 9, T + 3).expect("changed");
    assert_eq!(
        events,
        vec![Event::PriorityChanged {
            conversation: "c3".into(),
            priority: 9,
            at_ms: T + 3
        }]
    );
    world.record(events);
    assert_eq!(world.state.waiting().collect::<Vec<_>>(), ["c3", "c1", "c2"]);
    assert_eq!(world.state.conversation("c3").map(|c| c.enqueued_at_ms), Some(T + 2));
    assert_eq!(world.state.set_priority("c3", 9, T + 4), Ok(vec![]));
    assert_eq!(
        world.state.set_priority("zz", 1, T),
        Err(Rejection::UnknownConversation {
            conversation: "zz".into()
        })
    );
    world.assert_sound(false);
}

// --- remove ---------------------------------------------------------------------------------

#[test]
fn remove_takes_out_a_waiting_conversation() {
    let mut world = world(&[]);
    world.enqueue(conv("c1", "general"), T);
    let events = world.state.remove("c1", T + 1);
    assert_eq!(
        events,
        vec![Event::Removed {
            conversation: "c1".into(),
            agent: None,
            at_ms: T + 1
        }]
    );
    world.record(events);
    assert!(world.state.conversation("c1").is_none());
    assert_eq!(world.state.waiting().count(), 0);
    assert_eq!(world.state.remove("c1", T + 2), vec![], "unknown: nothing to record");
    world.assert_sound(true);
}

#[test]
fn remove_ends_an_offer_and_frees_the_agent() {
    let mut world = offered_to_a1();
    let events = world.state.remove("c1", T + 1);
    assert!(matches!(events.as_slice(), [Event::Removed { agent: Some(a), .. }] if a == "a1"));
    world.record(events);
    let agent = world.state.agent("a1").expect("agent");
    assert!(agent.offered.is_empty() && agent.load.is_empty());
    assert_eq!(world.state.next_expiry(), None);
    world.assert_sound(true);
}

#[test]
fn remove_frees_an_assigned_agent_and_counts_as_activity() {
    let mut world = assigned_to_a1();
    let events = world.state.remove("c1", T + 9_000);
    world.record(events);
    let agent = world.state.agent("a1").expect("agent");
    assert!(agent.assigned.is_empty() && agent.load.is_empty());
    assert_eq!(agent.last_activity_ms, Some(T + 9_000));
    world.assert_sound(true);
}

// --- offer_expired --------------------------------------------------------------------------

#[test]
fn offer_expired_returns_the_conversation_to_its_place() {
    let mut world = world(&[("a1", web(1))]);
    world.enqueue(conv("c1", "general"), T);
    world.enqueue(conv("c2", "general"), T + 1);
    world.dispatch(T);
    assert_eq!(world.state.next_expiry(), Some(T + TIMEOUT as i64));
    assert_eq!(
        world.state.pending_offers().collect::<Vec<_>>(),
        [(T + TIMEOUT as i64, "c1", "a1")]
    );
    let due = T + TIMEOUT as i64;
    assert_eq!(world.state.offer_expired("c1", "a1", due - 1), vec![], "early");
    assert_eq!(
        world.state.offer_expired("c1", "a2", due),
        vec![],
        "another agent's timer"
    );
    assert_eq!(world.state.offer_expired("zz", "a1", due), vec![], "unknown");
    let events = world.state.offer_expired("c1", "a1", due + 5);
    assert_eq!(
        events,
        vec![Event::OfferExpired {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: due + 5
        }]
    );
    world.record(events);
    assert_eq!(
        world.state.waiting().collect::<Vec<_>>(),
        ["c1", "c2"],
        "back at its place"
    );
    assert_eq!(
        world.state.conversation("c1").map(|c| c.declines.get("a1").copied()),
        Some(Some(1))
    );
    world.assert_sound(false);
}

#[test]
fn offer_expired_after_accept_is_stale() {
    let world = assigned_to_a1();
    assert_eq!(world.state.offer_expired("c1", "a1", T + 1_000_000), vec![]);
}

// --- accept ---------------------------------------------------------------------------------

#[test]
fn accept_assigns_and_records_the_wait() {
    let mut world = offered_to_a1();
    let events = world.state.accept("c1", "a1", T + 2_500).expect("accepted");
    assert_eq!(
        events,
        vec![Event::Assigned {
            conversation: "c1".into(),
            agent: "a1".into(),
            queue: "general".into(),
            at_ms: T + 2_500,
            waited_ms: 2_500
        }]
    );
    world.record(events);
    let agent = world.state.agent("a1").expect("agent");
    assert_eq!(agent.assigned.len(), 1);
    assert_eq!(agent.load_on("web"), 1);
    assert_eq!(agent.last_activity_ms, Some(T + 2_500));
    assert_eq!(world.state.next_expiry(), None);
    assert_eq!(world.state.accept("c1", "a1", T + 3_000), Ok(vec![]), "a retry");
    world.assert_sound(true);
}

#[test]
fn accept_is_refused_unless_offered_to_that_agent() {
    let mut world = world(&[("a1", web(1)), ("a2", web(1))]);
    world.enqueue(conv("c1", "general"), T);
    assert_eq!(
        world.state.accept("c1", "a1", T),
        Err(Rejection::NotOffered {
            conversation: "c1".into(),
            agent: "a1".into()
        }),
        "still waiting"
    );
    world.dispatch(T);
    assert!(matches!(
        world.state.accept("c1", "a2", T),
        Err(Rejection::NotOffered { .. })
    ));
    assert!(matches!(
        world.state.accept("zz", "a1", T),
        Err(Rejection::UnknownConversation { .. })
    ));
}

#[test]
fn accept_after_the_deadline_succeeds_until_the_expiry_is_recorded() {
    let mut world = offered_to_a1();
    let late = T + TIMEOUT as i64 + 100;
    assert!(world.state.accept("c1", "a1", late).is_ok());
    let events = world.state.offer_expired("c1", "a1", late);
    world.ok(Ok(events));
    assert!(matches!(
        world.state.accept("c1", "a1", late),
        Err(Rejection::NotOffered { .. })
    ));
}

// --- reject ---------------------------------------------------------------------------------

#[test]
fn reject_returns_the_conversation_and_remembers_the_agent() {
    let mut world = offered_to_a1();
    let events = world.state.reject("c1", "a1", T + 10).expect("rejected");
    assert_eq!(
        events,
        vec![Event::OfferRejected {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: T + 10
        }]
    );
    world.record(events);
    let c1 = world.state.conversation("c1").expect("c1");
    assert_eq!(c1.status, Status::Waiting);
    assert_eq!(c1.declines.get("a1"), Some(&1));
    assert!(matches!(
        world.state.reject("c1", "a1", T),
        Err(Rejection::NotOffered { .. })
    ));
    // The only qualified agent declined: a new round offers it to them again.
    assert_eq!(offers(&world.dispatch(T + 20)), pairs(&[("c1", "a1")]));
    world.assert_sound(true);
}

// --- transfer -------------------------------------------------------------------------------

#[test]
fn transfer_to_a_queue_frees_the_agent_and_waits_from_now() {
    let mut world = offered_to_a1();
    world.queue("billing", Strategy::RoundRobin, 10_000);
    let events = world.state.reject("c1", "a1", T);
    world.ok(events);
    world.dispatch(T);
    let events = world.state.accept("c1", "a1", T + 1_000);
    world.ok(events);
    assert_eq!(world.state.conversation("c1").map(|c| c.declines.len()), Some(1));
    let to = TransferTarget::Queue {
        queue: "billing".into(),
        skills: vec![skill("invoice", 2)],
    };
    let events = world.state.transfer("c1", to.clone(), T + 60_000).expect("transferred");
    assert_eq!(
        events,
        vec![Event::Transferred {
            conversation: "c1".into(),
            from_agent: Some("a1".into()),
            to,
            at_ms: T + 60_000
        }]
    );
    world.record(events);
    let c1 = world.state.conversation("c1").expect("c1");
    assert_eq!(c1.queue, "billing");
    assert_eq!(c1.enqueued_at_ms, T + 60_000);
    assert_eq!(c1.skills, vec![skill("invoice", 2)]);
    assert!(c1.declines.is_empty());
    assert_eq!(c1.status, Status::Waiting);
    let agent = world.state.agent("a1").expect("agent");
    assert!(agent.assigned.is_empty());
    assert_eq!(agent.last_activity_ms, Some(T + 60_000));
    world.assert_sound(false);
}

#[test]
fn transfer_is_refused_for_unknown_targets() {
    let world = assigned_to_a1();
    assert_eq!(
        world.state.transfer(
            "c1",
            TransferTarget::Queue {
                queue: "nope".into(),
                skills: vec![]
            },
            T
        ),
        Err(Rejection::UnknownQueue { queue: "nope".into() })
    );
    assert_eq!(
        world
            .state
            .transfer("c1", TransferTarget::Agent { agent: "zz".into() }, T),
        Err(Rejection::UnknownAgent { agent: "zz".into() })
    );
    assert!(matches!(
        world
            .state
            .transfer("zz", TransferTarget::Agent { agent: "a1".into() }, T),
        Err(Rejection::UnknownConversation { .. })
    ));
}

#[test]
fn transfer_to_an_agent_offers_it_directly() {
    let mut world = assigned_to_a1();
    // a2 lacks every skill and language and does not serve the queue: a person chose them.
    let mut p = profile(&[], &[], &[("web", 1)]);
    p.queues.insert("elsewhere".into());
    world.online_agent("a2", p);
    let events = world
        .state
        .transfer("c1", TransferTarget::Agent { agent: "a2".into() }, T + 5_000)
        .expect("transferred");
    assert!(matches!(
        events.as_slice(),
        [
            Event::Transferred { from_agent: Some(from), .. },
            Event::Offered { agent, direct: true, expires_at_ms, candidates, .. },
        ] if from == "a1" && agent == "a2" && *expires_at_ms == T + 5_000 + TIMEOUT as i64 && candidates.is_empty()
    ));
    world.record(events);
    assert!(world.state.agent("a1").expect("a1").assigned.is_empty());
    assert_eq!(world.state.agent("a2").expect("a2").offered.len(), 1);
    world.assert_sound(false);
    // Declined, it waits in its queue at its old place and dispatch finds the next agent.
    let events = world.state.reject("c1", "a2", T + 6_000);
    world.ok(events);
    assert_eq!(world.state.conversation("c1").map(|c| c.enqueued_at_ms), Some(T));
    assert_eq!(offers(&world.dispatch(T + 6_000)), pairs(&[("c1", "a1")]));
    world.assert_sound(true);
}

#[test]
fn transfer_to_an_agent_needs_them_online_with_room() {
    let mut world = assigned_to_a1();
    let events = world.state.register_agent("a2", web(1));
    world.ok(events);
    let unavailable = |r: Result<Vec<Event>, Rejection>| matches!(r, Err(Rejection::AgentUnavailable { .. }));
    assert!(
        unavailable(
            world
                .state
                .transfer("c1", TransferTarget::Agent { agent: "a2".into() }, T)
        ),
        "offline"
    );
    assert!(
        unavailable(
            world
                .state
                .transfer("c1", TransferTarget::Agent { agent: "a1".into() }, T)
        ),
        "already theirs"
    );
    let events = world.state.set_presence("a2", Presence::Online, T);
    world.ok(events);
    world.enqueue(conv("c2", "general"), T);
    let events = world
        .state
        .transfer("c2", TransferTarget::Agent { agent: "a2".into() }, T);
    world.ok(events);
    assert!(
        unavailable(
            world
                .state
                .transfer("c1", TransferTarget::Agent { agent: "a2".into() }, T)
        ),
        "full"
    );
}

// --- release --------------------------------------------------------------------------------

#[test]
fn release_frees_the_agent_and_forgets_the_conversation() {
    let mut world = assigned_to_a1();
    let events = world.state.release("a1", "c1", T + 90_000).expect("released");
    assert_eq!(
        events,
        vec![Event::Released {
            conversation: "c1".into(),
            agent: "a1".into(),
            at_ms: T + 90_000
        }]
    );
    world.record(events);
    assert!(world.state.conversation("c1").is_none());
    let agent = world.state.agent("a1").expect("agent");
    assert!(agent.assigned.is_empty() && agent.load.is_empty());
    assert_eq!(agent.last_activity_ms, Some(T + 90_000));
    world.assert_sound(true);
}

#[test]
fn release_is_refused_unless_assigned_to_that_agent() {
    let world = offered_to_a1();
    assert_eq!(
        world.state.release("a1", "c1", T),
        Err(Rejection::NotAssigned {
            conversation: "c1".into(),
            agent: "a1".into()
        }),
        "only offered"
    );
    let world = assigned_to_a1();
    assert!(matches!(
        world.state.release("a2", "c1", T),
        Err(Rejection::NotAssigned { .. })
    ));
    assert!(matches!(
        world.state.release("a1", "zz", T),
        Err(Rejection::UnknownConversation { .. })
    ));
}

#[test]
fn rejections_read_well() {
    let text = Rejection::NotOffered {
        conversation: "c1".into(),
        agent: "a1".into(),
    }
    .to_string();
    assert_eq!(text, "conversation c1 is not offered to agent a1");
}
