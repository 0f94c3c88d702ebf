//! Every node type, given a small flow, when the engine runs it, then the effects and state.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use yy_flow::{
    CallOutcome, CallResult, Card, CardButton, Contact, Context, Effect, Engine, EngineError, Flow, FlowEvent,
    FlowState, Input, Lang, Message, Outcome, Status, Step, Understanding,
};

fn flow(nodes: Value) -> Flow {
    let start = nodes[0]["id"].as_str().unwrap_or("a").to_owned();
    let doc = json!({"id": "t", "version": 1, "start": start, "nodes": nodes});
    Flow::parse_json(&doc.to_string()).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn ctx() -> Context {
    Context {
        now_ms: 1_795_019_400_000,
        utc_offset_minutes: 480,
        conversation_id: "conv_9".into(),
        channel: "wechat".into(),
        contact: Contact {
            id: "ctc_1".into(),
            name: Some("王芳".into()),
            attributes: BTreeMap::from([("tier".into(), "vip".into())]),
        },
        language: Lang::Zh,
    }
}

fn effects(step: &Step) -> Vec<&Effect> {
    step.effects.iter().map(|e| &e.effect).collect()
}

fn say(text: &str) -> Effect {
    Effect::Say {
        text: text.into(),
        quick_replies: vec![],
        card: None,
    }
}

fn msg(flow: &Flow, state: &FlowState, text: &str) -> Step {
    Engine::resume(flow, state, &ctx(), Input::Message(Message::text(text))).unwrap()
}

/// The state folded from all events equals the state the engine returned.
fn assert_folds(steps: &[&Step]) {
    let events = steps.iter().flat_map(|s| s.events.iter()).collect::<Vec<_>>();
    let folded = FlowState::from_events(events.iter().copied()).expect("starts with Started");
    assert_eq!(&folded, &steps.last().unwrap().state);
}

#[test]
fn say_renders_templates_cards_and_quick_replies_and_without_next_stops() {
    let f = flow(json!([
        {"id": "hi", "type": "say",
         "text": {"zh": "{{contact.name}}您好（{{conversation.channel}}，{{contact.attributes.tier}}）", "en": "Hi {{contact.name}}"},
         "quick_replies": ["查订单", {"en": "Refund", "zh": "退款"}],
         "card": {"title": "订单", "text": "会话 {{conversation.id}}", "image_url": "https://img.example/{{contact.id}}.png",
                  "buttons": [{"label": "打开", "url": "https://shop.example/o"}, {"label": "人工", "reply": "转人工"}]}}
    ]));
    let step = Engine::start(&f, &ctx(), None);
    assert_eq!(
        effects(&step),
        [
            &Effect::Say {
                text: "王芳您好（wechat，vip）".into(),
                quick_replies: vec!["查订单".into(), "退款".into()],
                card: Some(Card {
                    title: "订单".into(),
                    text: Some("会话 conv_9".into()),
                    image_url: Some("https://img.example/ctc_1.png".into()),
                    buttons: vec![
                        CardButton {
                            label: "打开".into(),
                            url: Some("https://shop.example/o".into()),
                            reply: None
                        },
                        CardButton {
                            label: "人工".into(),
                            url: None,
                            reply: Some("转人工".into())
                        },
                    ],
                }),
            },
            &Effect::End {
                resolve: false,
                ask_csat: false
            },
        ]
    );
    assert!(matches!(
        step.state.status,
        Status::Finished {
            outcome: Outcome::Stopped,
            ..
        }
    ));
    let en = Engine::start(
        &f,
        &Context {
            language: Lang::En,
            ..ctx()
        },
        None,
    );
    assert!(
        matches!(effects(&en)[0], Effect::Say { text, quick_replies, .. } if text == "Hi 王芳" && quick_replies[1] == "Refund")
    );
    assert_folds(&[&step]);
}

#[test]
fn a_text_in_one_language_is_said_in_the_other_too() {
    let f = flow(json!([{"id": "a", "type": "say", "text": {"zh": "只有中文"}}]));
    let step = Engine::start(
        &f,
        &Context {
            language: Lang::En,
            ..ctx()
        },
        None,
    );
    assert_eq!(effects(&step)[0], &say("只有中文"));
}

fn ask_flow(validate: Value) -> Flow {
    flow(json!([
        {"id": "q", "type": "ask", "slot": "v", "prompt": "问?", "reprompt": "再问?", "max_attempts": 2,
         "validate": validate, "quick_replies": ["A"], "next": "ok", "on_invalid": "bad"},
        {"id": "ok", "type": "say", "text": "值={{slot.v}}"},
        {"id": "bad", "type": "say", "text": "放弃"}
    ]))
}

#[test]
fn ask_prompts_waits_reprompts_then_takes_a_valid_answer() {
    let f = ask_flow(json!({"number": {"min": 1, "max": 5, "integer": true}}));
    let step = Engine::start(&f, &ctx(), None);
    assert_eq!(
        effects(&step),
        [
            &Effect::Say {
                text: "问?".into(),
                quick_replies: vec!["A".into()],
                card: None
            },
            &Effect::AwaitInput
        ]
    );
    let again = msg(&f, &step.state, "9");
    assert_eq!(
        effects(&again),
        [
            &Effect::Say {
                text: "再问?".into(),
                quick_replies: vec!["A".into()],
                card: None
            },
            &Effect::AwaitInput
        ]
    );
    assert!(again.events.contains(&FlowEvent::AnswerRejected {
        node: "q".into(),
        attempts: 1
    }));
    let done = msg(&f, &again.state, "三");
    assert_eq!(effects(&done)[0], &say("值=3"));
    assert_eq!(done.state.slots["v"], 3);
    assert_folds(&[&step, &again, &done]);
}

#[test]
fn ask_goes_to_on_invalid_after_the_last_attempt() {
    let f = ask_flow(json!({"pattern": "^[A-Z]{2}\\d{4}$"}));
    let step = Engine::start(&f, &ctx(), None);
    let step = msg(&f, &step.state, "nope");
    let step = msg(&f, &step.state, "still no");
    assert_eq!(effects(&step)[0], &say("放弃"));
    assert!(!step.state.slots.contains_key("v"));
}

#[test]
fn ask_with_each_validator_fills_the_slot_with_its_value() {
    for (validate, answer, value) in [
        (json!({"pattern": "([A-Z]{2}\\d{4})"}), "是 AB1234 吧", json!("AB1234")),
        (
            json!({"choice": [{"value": "red", "synonyms": ["红色", "红"]}, {"value": "blue", "synonyms": ["蓝"]}]}),
            "要红色的",
            json!("red"),
        ),
        (json!({"number": {}}), "２.５", json!(2.5)),
        (
            json!({"date": {"range": "future"}}),
            "2026年12月25日",
            json!("2026-12-25"),
        ),
        (json!("order_number"), "#20231125-7781", json!("20231125-7781")),
        (
            json!({"text": {"max_chars": 20}}),
            "  地址在上海  ",
            json!("地址在上海"),
        ),
    ] {
        let f = ask_flow(validate.clone());
        let step = Engine::start(&f, &ctx(), None);
        let step = msg(&f, &step.state, answer);
        assert_eq!(step.state.slots.get("v"), Some(&value), "{validate}");
    }
}

#[test]
fn a_date_answer_is_read_against_the_local_date_of_the_context() {
    let f = ask_flow(json!({"date": {}}));
    let step = Engine::start(&f, &ctx(), None);
    // 1_795_019_400_000 ms is 2026-11-18 16:30 UTC, already 2026-11-19 00:30 in China.
    let step = msg(&f, &step.state, "明天");
    assert_eq!(step.state.slots["v"], "2026-11-20");
}

#[test]
fn branch_decides_on_intent_sentiment_contact_channel_and_time() {
    let f = flow(json!([
        {"id": "b", "type": "branch", "cases": [
            {"when": {"intent": "refund"}, "next": "refund"},
            {"when": {"all": [{"contact": "tier", "equals": "vip"}, {"sentiment": {"below": -0.5}}]}, "next": "vip"},
            {"when": {"time": {"between": "00:00-08:00"}}, "next": "night"},
            {"when": {"channel": ["web"]}, "next": "web"}
        ], "default": "other"},
        {"id": "refund", "type": "say", "text": "refund"},
        {"id": "vip", "type": "say", "text": "vip"},
        {"id": "night", "type": "say", "text": "night"},
        {"id": "web", "type": "say", "text": "web"},
        {"id": "other", "type": "say", "text": "other"}
    ]));
    let with = |intent: Option<&str>, sentiment: Option<f32>| Message {
        text: "x".into(),
        understanding: Understanding {
            intent: intent.map(Into::into),
            sentiment,
            ..Understanding::default()
        },
    };
    let first = |ctx: &Context, m: &Message| match &Engine::start(&f, ctx, Some(m)).effects[0].effect {
        Effect::Say { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(first(&ctx(), &with(Some("refund"), None)), "refund");
    assert_eq!(first(&ctx(), &with(None, Some(-0.9))), "vip");
    // 00:30 local time.
    assert_eq!(first(&ctx(), &with(None, None)), "night");
    let noon = Context {
        now_ms: 1_795_019_400_000 + 12 * 3_600_000,
        ..ctx()
    };
    assert_eq!(first(&noon, &with(None, None)), "other");
    let web = Context {
        channel: "web".into(),
        ..noon
    };
    assert_eq!(first(&web, &with(None, None)), "web");
}

fn call_flow() -> Flow {
    flow(json!([
        {"id": "c", "type": "call", "retries": 1, "backoff_ms": 200, "timeout_ms": 1000,
         "request": {"method": "post", "url": "https://api.example/tickets?who={{contact.name}}",
                     "headers": {"X-Key": "{{secrets.key}}", "X-Conv": "{{conversation.id}}"},
                     "body": {"contact": "{{contact.id}}", "tags": ["a", "{{conversation.channel}}"], "n": 3}},
         "save": {"ref": "body.ticket.ref", "code": "status"},
         "next": "ok", "on_status": {"409": "dup"}, "on_error": "err"},
        {"id": "ok", "type": "say", "text": "ref {{slot.ref}} / {{call.body.ticket.ref}} / {{slot.code}}"},
        {"id": "dup", "type": "say", "text": "dup {{call.status}}"},
        {"id": "err", "type": "say", "text": "err {{call.status}}"}
    ]))
}

fn result(flow: &Flow, state: &FlowState, attempt: u32, outcome: CallOutcome) -> Result<Step, EngineError> {
    Engine::resume(flow, state, &ctx(), Input::CallResult(CallResult { attempt, outcome }))
}

#[test]
fn call_renders_the_request_with_escaped_values_and_secret_references() {
    let f = call_flow();
    let step = Engine::start(&f, &ctx(), None);
    let [
        Effect::Call {
            request,
            attempt: 1,
            max_attempts: 2,
            delay_ms: 0,
        },
    ] = effects(&step)[..]
    else {
        panic!("{:?}", step.effects);
    };
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url.to_string(),
        "https://api.example/tickets?who=%E7%8E%8B%E8%8A%B3"
    );
    assert_eq!(request.headers[0].0, "X-Conv");
    assert_eq!(request.headers[1].1.secrets().collect::<Vec<_>>(), ["key"]);
    assert_eq!(
        request.body,
        Some(json!({"contact": "ctc_1", "tags": ["a", "wechat"], "n": 3}))
    );
    assert_eq!(request.timeout_ms, 1000);
    assert_eq!(
        step.state.status,
        Status::AwaitingCall {
            node: "c".into(),
            attempt: 1
        }
    );
}

#[test]
fn call_success_saves_fields_and_keeps_what_templates_read() {
    let f = call_flow();
    let step = Engine::start(&f, &ctx(), None);
    let body = json!({"ticket": {"ref": "T-7", "big": "x".repeat(10_000)}});
    let done = result(&f, &step.state, 1, CallOutcome::Response { status: 201, body }).unwrap();
    assert_eq!(effects(&done)[0], &say("ref T-7 / T-7 / 201"));
    // Only what the flow reads is kept: the state stays small whatever the response.
    assert_eq!(
        done.state.call.keys().collect::<Vec<_>>(),
        ["body.ticket.ref", "status"]
    );
    assert!(serde_json::to_string(&done.state).unwrap().len() < 600);
    assert_folds(&[&step, &done]);
}

#[test]
fn call_retries_on_failure_and_5xx_but_not_on_4xx() {
    let f = call_flow();
    let step = Engine::start(&f, &ctx(), None);
    let retry = result(
        &f,
        &step.state,
        1,
        CallOutcome::Response {
            status: 502,
            body: Value::Null,
        },
    )
    .unwrap();
    assert!(matches!(
        effects(&retry)[..],
        [Effect::Call {
            attempt: 2,
            delay_ms: 200,
            ..
        }]
    ));
    let gave_up = result(
        &f,
        &retry.state,
        2,
        CallOutcome::Failed {
            reason: "timeout".into(),
        },
    )
    .unwrap();
    assert_eq!(effects(&gave_up)[0], &say("err "));

    let bad_request = result(
        &f,
        &step.state,
        1,
        CallOutcome::Response {
            status: 400,
            body: json!({"error": "bad"}),
        },
    )
    .unwrap();
    assert_eq!(effects(&bad_request)[0], &say("err 400"));

    let routed = result(
        &f,
        &step.state,
        1,
        CallOutcome::Response {
            status: 409,
            body: Value::Null,
        },
    )
    .unwrap();
    assert_eq!(effects(&routed)[0], &say("dup 409"));
}

#[test]
fn kb_asks_the_knowledge_base_and_goes_on_by_its_answer() {
    let f = flow(json!([
        {"id": "k", "type": "kb", "next": "found", "on_no_answer": "none"},
        {"id": "found", "type": "end"},
        {"id": "none", "type": "handoff", "queue": "general"}
    ]));
    let step = Engine::start(&f, &ctx(), Some(&Message::text("怎么退货")));
    assert_eq!(
        effects(&step),
        [&Effect::Kb {
            query: "怎么退货".into()
        }]
    );
    let found = Engine::resume(&f, &step.state, &ctx(), Input::KbResult { answered: true }).unwrap();
    assert!(matches!(
        found.state.status,
        Status::Finished {
            outcome: Outcome::Ended { resolve: true },
            ..
        }
    ));
    let none = Engine::resume(&f, &step.state, &ctx(), Input::KbResult { answered: false }).unwrap();
    assert!(matches!(effects(&none)[..], [Effect::Handoff { priority: 5, .. }]));
}

#[test]
fn ticket_set_and_end_produce_their_effects_in_order() {
    let f = flow(json!([
        {"id": "s", "type": "set", "slots": {"topic": "退款"}, "attributes": {"last_topic": "{{slot.topic}}"},
         "tags": ["refund", "bot"], "next": "t"},
        {"id": "t", "type": "ticket", "fields": {"subject": "{{slot.topic}} - {{contact.name}}", "priority": "high"}, "next": "e"},
        {"id": "e", "type": "end", "resolve": false, "ask_csat": true}
    ]));
    let step = Engine::start(&f, &ctx(), None);
    assert_eq!(
        effects(&step),
        [
            &Effect::SetAttribute {
                name: "last_topic".into(),
                value: "退款".into()
            },
            &Effect::Tag { tag: "refund".into() },
            &Effect::Tag { tag: "bot".into() },
            &Effect::CreateTicket {
                fields: BTreeMap::from([
                    ("priority".into(), "high".into()),
                    ("subject".into(), "退款 - 王芳".into())
                ])
            },
            &Effect::End {
                resolve: false,
                ask_csat: true
            },
        ]
    );
    assert_eq!(step.visited, ["s", "t", "e"]);
    assert_eq!(step.effects[3].node, "t");
}

#[test]
fn handoff_ends_the_flow_with_queue_priority_and_note() {
    let f = flow(json!([
        {"id": "h", "type": "handoff", "queue": "vip", "priority": 9, "note": "{{contact.name}}: {{message.text}}"}
    ]));
    let step = Engine::start(&f, &ctx(), Some(&Message::text("我要投诉")));
    assert_eq!(
        effects(&step),
        [&Effect::Handoff {
            queue: "vip".into(),
            priority: 9,
            note: Some("王芳: 我要投诉".into())
        }]
    );
    assert!(step.state.is_finished());
    assert_eq!(step.state.node(), "h");
}

#[test]
fn resume_refuses_other_versions_finished_flows_and_unexpected_inputs() {
    let f = ask_flow(json!("order_number"));
    let step = Engine::start(&f, &ctx(), None);
    let mut other = step.state.clone();
    other.flow_version = 2;
    assert!(matches!(
        Engine::resume(&f, &other, &ctx(), Input::Message(Message::text("A-1"))),
        Err(EngineError::WrongFlow { .. })
    ));
    assert!(matches!(
        Engine::resume(&f, &step.state, &ctx(), Input::KbResult { answered: true }),
        Err(EngineError::Unexpected { .. })
    ));
    let mut corrupt = step.state.clone();
    corrupt.status = Status::AwaitingMessage {
        node: "ghost".into(),
        attempts: 0,
    };
    assert!(matches!(
        Engine::resume(&f, &corrupt, &ctx(), Input::Message(Message::text("x"))),
        Err(EngineError::CorruptState(_))
    ));
    let mut wrong_kind = step.state.clone();
    wrong_kind.status = Status::AwaitingMessage {
        node: "ok".into(),
        attempts: 0,
    };
    assert!(matches!(
        Engine::resume(&f, &wrong_kind, &ctx(), Input::Message(Message::text("x"))),
        Err(EngineError::CorruptState(_))
    ));
    let done = msg(&f, &step.state, "A-1024");
    assert_eq!(
        Engine::resume(&f, &done.state, &ctx(), Input::Message(Message::text("again"))),
        Err(EngineError::Finished)
    );
}

#[test]
fn state_and_events_round_trip_through_json() {
    let f = call_flow();
    let step = Engine::start(&f, &ctx(), Some(&Message::text("hi")));
    let json = serde_json::to_string(&step).unwrap();
    let back: Step = serde_json::from_str(&json).unwrap();
    assert_eq!(back, step);
    let state_json = serde_json::to_value(&step.state).unwrap();
    assert_eq!(state_json["flow_version"], 1);
    assert_eq!(state_json["status"]["status"], "awaiting_call");
    let flow_json = serde_json::to_string(&f).unwrap();
    let flow_back: Flow = serde_json::from_str(&flow_json).unwrap();
    assert_eq!(flow_back, f);
}

#[test]
fn understanding_comes_from_routing_analysis() {
    let analysis = yy_nlu::Analyzer::default_bilingual().analyze("订单 A-1024 怎么还没发货？气死我了");
    let u = Understanding::from_analysis(&analysis);
    assert_eq!(u.intent.as_deref(), Some("order_status"));
    assert_eq!(u.language, Some(Lang::Zh));
    assert!(u.sentiment.is_some_and(|s| s < 0.0));
    assert_eq!(u.order_numbers, ["A-1024"]);
}

#[test]
fn flow_versions_move_from_draft_to_published_to_archived() {
    use yy_flow::FlowStatus::{Archived, Draft, Published};
    assert!(Draft.can_become(Published) && Draft.can_become(Archived) && Draft.can_become(Draft));
    assert!(Published.can_become(Archived) && !Published.can_become(Draft));
    assert!(!Archived.can_become(Published) && !Archived.can_become(Draft));
    assert!(Published.starts_conversations() && !Draft.starts_conversations() && !Archived.starts_conversations());
}
