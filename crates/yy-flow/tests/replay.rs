//! Replay: a draft run over recorded conversations, answered from the recording, compared
//! turn by turn with the published version.

use serde_json::json;
use yy_flow::{
    CallOutcome, Context, Effect, Flow, Message, Outcome, RecordedCall, RecordedConversation, RecordedKb, RecordedTurn,
    TurnNote, compare, diff, replay,
};

fn published() -> Flow {
    Flow::parse_json(include_str!("../examples/order_status.json")).unwrap()
}

/// The published flow with a changed text for shipped orders, and a 404 that hands off instead
/// of asking again.
fn draft() -> Flow {
    let mut doc: serde_json::Value = serde_json::from_str(include_str!("../examples/order_status.json")).unwrap();
    doc["version"] = json!(2);
    let nodes = doc["nodes"].as_array_mut().unwrap();
    for node in nodes.iter_mut() {
        if node["id"] == "say_shipped" {
            node["text"]["zh"] =
                json!("您的订单 {{slot.order_number}} 已在路上（运单 {{call.body.tracking_number}}）。");
        }
        if node["id"] == "say_not_found" {
            node["next"] = json!("handoff_no_order_number");
        }
    }
    Flow::parse_json(&doc.to_string()).unwrap()
}

fn turn(text: &str) -> RecordedTurn {
    RecordedTurn {
        now_ms: None,
        message: Message::text(text),
    }
}

fn call(order: &str, outcome: CallOutcome) -> RecordedCall {
    RecordedCall {
        method: "GET".into(),
        url: format!("{{{{secrets.order_api_base}}}}/orders/{order}"),
        outcome,
    }
}

fn shipped() -> RecordedConversation {
    RecordedConversation {
        id: "conv_shipped".into(),
        context: Context::default(),
        turns: vec![turn("查询订单"), turn("A-1024"), turn("有帮助")],
        calls: vec![call(
            "A-1024",
            CallOutcome::Response {
                status: 200,
                body: json!({"status": "shipped", "tracking_number": "SF1", "estimated_delivery": "周五"}),
            },
        )],
        kb: vec![],
    }
}

fn not_found() -> RecordedConversation {
    RecordedConversation {
        id: "conv_404".into(),
        context: Context::default(),
        turns: vec![turn("查询订单"), turn("A-999"), turn("A-1024"), turn("有帮助")],
        calls: vec![
            call(
                "A-999",
                CallOutcome::Response {
                    status: 404,
                    body: json!({}),
                },
            ),
            call(
                "A-1024",
                CallOutcome::Response {
                    status: 200,
                    body: json!({"status": "delivered"}),
                },
            ),
        ],
        kb: vec![],
    }
}

#[test]
fn replaying_the_same_version_finds_no_difference_and_performs_nothing() {
    let flow = published();
    let a = replay(&flow, &shipped());
    let b = replay(&flow, &shipped());
    assert_eq!(a, b);
    assert!(diff(&a, &b).is_empty());
    assert_eq!(a.turns.len(), 3);
    assert!(a.turns.iter().all(|t| t.note.is_none()));
    assert_eq!(
        a.outcome,
        Some(Outcome::Ended { resolve: true }),
        "the recorded call answered the lookup"
    );
    // The call is in the transcript as requested, answered from the recording.
    assert!(
        a.turns[1]
            .effects
            .iter()
            .any(|e| matches!(&e.effect, Effect::Call { attempt: 1, .. }))
    );
}

#[test]
fn a_draft_that_answers_differently_is_reported_turn_by_turn_with_the_node() {
    let differences = compare(&published(), &draft(), &[shipped(), not_found()]);
    assert_eq!(differences.len(), 4, "{differences:#?}");

    // The shipped conversation differs at turn 1, in the text of say_shipped.
    let first = &differences[0];
    assert_eq!((first.conversation_id.as_str(), first.turn), ("conv_shipped", 1));
    assert_eq!(first.baseline_node.as_deref(), Some("say_shipped"));
    assert_eq!(first.candidate_node.as_deref(), Some("say_shipped"));
    let said = |effects: &[yy_flow::Emitted]| {
        effects
            .iter()
            .find(|e| e.node == "say_shipped")
            .map(|e| e.effect.clone())
    };
    assert_eq!(
        said(&first.candidate),
        Some(Effect::Say {
            text: "您的订单 A-1024 已在路上（运单 SF1）。".into(),
            quick_replies: vec![],
            card: None
        })
    );

    // The 404 conversation: the draft hands off where the published version asked again, and
    // then has nothing to say to the messages that follow.
    let second = &differences[1];
    assert_eq!((second.conversation_id.as_str(), second.turn), ("conv_404", 1));
    assert_eq!(second.baseline_node.as_deref(), Some("ask_order"));
    assert_eq!(second.candidate_node.as_deref(), Some("handoff_no_order_number"));
    for (later, turn) in differences[2..].iter().zip([2, 3]) {
        assert_eq!(later.turn, turn);
        assert_eq!(later.candidate_note, Some(TurnNote::FlowFinished));
        assert!(later.candidate.is_empty());
        assert!(!later.baseline.is_empty());
    }
}

#[test]
fn a_call_the_recording_does_not_have_is_reported_and_never_performed() {
    let mut recorded = shipped();
    recorded.calls.clear();
    let t = replay(&published(), &recorded);
    assert_eq!(
        t.turns[1].note,
        Some(TurnNote::UnrecordedCall {
            method: "GET".into(),
            url: "{{secrets.order_api_base}}/orders/A-1024".into()
        })
    );
    assert_eq!(t.turns[2].note, Some(TurnNote::Stopped));
    assert_eq!(t.outcome, None);
    let d = diff(&replay(&published(), &shipped()), &t);
    assert_eq!(d.len(), 2);
    assert!(matches!(d[0].candidate_note, Some(TurnNote::UnrecordedCall { .. })));
}

#[test]
fn recorded_failures_drive_the_retries() {
    let mut recorded = shipped();
    let down = || {
        call(
            "A-1024",
            CallOutcome::Failed {
                reason: "timeout".into(),
            },
        )
    };
    recorded.calls = vec![down(), down(), down()];
    recorded.turns.truncate(2);
    let t = replay(&published(), &recorded);
    let attempts = t.turns[1]
        .effects
        .iter()
        .filter_map(|e| match &e.effect {
            Effect::Call { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(matches!(t.outcome, Some(Outcome::HandedOff { .. })));
}

#[test]
fn knowledge_base_answers_come_from_the_recording() {
    let flow = Flow::parse_json(
        &json!({"id": "kb", "version": 1, "start": "k", "nodes": [
            {"id": "k", "type": "kb", "next": "yes", "on_no_answer": "no"},
            {"id": "yes", "type": "end"},
            {"id": "no", "type": "handoff", "queue": "general"}
        ]})
        .to_string(),
    )
    .unwrap();
    let recorded = RecordedConversation {
        id: "c".into(),
        turns: vec![turn("怎么退货")],
        kb: vec![RecordedKb {
            query: "怎么退货".into(),
            answered: false,
        }],
        ..RecordedConversation::default()
    };
    let t = replay(&flow, &recorded);
    assert!(matches!(t.outcome, Some(Outcome::HandedOff { .. })));
    let unrecorded = replay(&flow, &RecordedConversation { kb: vec![], ..recorded });
    assert_eq!(
        unrecorded.turns[0].note,
        Some(TurnNote::UnrecordedKb {
            query: "怎么退货".into()
        })
    );
}

#[test]
fn a_recorded_conversation_reads_from_json() {
    let recorded: RecordedConversation = serde_json::from_value(json!({
        "id": "conv_1",
        "context": {"channel": "web", "utc_offset_minutes": 480},
        "turns": [{"message": {"text": "查询订单"}}, {"now_ms": 1795000000000i64, "message": {"text": "A-1024", "understanding": {"sentiment": -0.2}}}],
        "calls": [{"method": "GET", "url": "{{secrets.order_api_base}}/orders/A-1024",
                   "outcome": {"kind": "response", "status": 200, "body": {"status": "delivered"}}}]
    }))
    .unwrap();
    let t = replay(&published(), &recorded);
    assert_eq!(t.flow_version, 1);
    assert_eq!(t.turns.len(), 2);
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["turns"][1]["effects"][0]["effect"], "call");
}
