//! The shipped order-status flow, driven the way the service drives it, with the responses an
//! order API gives: the happy path, the API down, an invalid order number, and the customer
//! who is not helped.

use serde_json::{Value, json};
use yy_flow::{
    CallOutcome, CallResult, Context, Effect, Engine, Flow, FlowState, Input, Lang, Message, Outcome, Status, Step,
    Understanding,
};

fn flow() -> Flow {
    let flow = Flow::parse_json(include_str!("../examples/order_status.json")).expect("the shipped flow is valid");
    assert!(flow.warnings().is_empty(), "{:?}", flow.warnings());
    flow
}

fn ctx() -> Context {
    Context {
        now_ms: 1_795_000_000_000,
        utc_offset_minutes: 480,
        conversation_id: "conv_1".into(),
        channel: "web".into(),
        ..Context::default()
    }
}

fn say(step: &Step) -> Vec<&str> {
    step.effects
        .iter()
        .filter_map(|e| match &e.effect {
            Effect::Say { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn message(flow: &Flow, state: &FlowState, text: &str) -> Step {
    Engine::resume(flow, state, &ctx(), Input::Message(Message::text(text))).expect("waiting for a message")
}

fn answer(flow: &Flow, state: &FlowState, attempt: u32, outcome: CallOutcome) -> Step {
    Engine::resume(flow, state, &ctx(), Input::CallResult(CallResult { attempt, outcome })).expect("waiting for a call")
}

fn ok(body: Value) -> CallOutcome {
    CallOutcome::Response { status: 200, body }
}

fn call_of(step: &Step) -> (&yy_flow::HttpRequest, u32, u32, u32) {
    match step.effects.last().map(|e| &e.effect) {
        Some(Effect::Call {
            request,
            attempt,
            max_attempts,
            delay_ms,
        }) => (request, *attempt, *max_attempts, *delay_ms),
        other => panic!("expected a call, got {other:?}"),
    }
}

fn asked_for_order(flow: &Flow) -> Step {
    let step = Engine::start(flow, &ctx(), Some(&Message::text("我的订单到哪了")));
    assert_eq!(
        say(&step),
        ["好的，我来帮您查询订单。请发送您的订单号（例如 A-1024）。"]
    );
    assert!(matches!(
        step.effects.last().map(|e| &e.effect),
        Some(Effect::AwaitInput)
    ));
    assert_eq!(
        step.state.status,
        Status::AwaitingMessage {
            node: "ask_order".into(),
            attempts: 0
        }
    );
    step
}

#[test]
fn happy_path_asks_calls_tells_the_status_and_resolves() {
    let flow = flow();
    // Given the customer asked about an order and was asked for its number,
    let step = asked_for_order(&flow);
    // when they send it, then the engine asks the service to call the order API.
    let step = message(&flow, &step.state, "订单号是 A-1024");
    let (request, attempt, max_attempts, delay_ms) = call_of(&step);
    assert_eq!((attempt, max_attempts, delay_ms), (1, 3, 0));
    assert_eq!(request.method, "GET");
    assert_eq!(request.url.to_string(), "{{secrets.order_api_base}}/orders/A-1024");
    assert_eq!(request.timeout_ms, 3000);
    let secrets = |name: &str| match name {
        "order_api_base" => Some("http://127.0.0.1:8080".to_owned()),
        "order_api_token" => Some("t0k".to_owned()),
        _ => None,
    };
    assert_eq!(
        request.url.resolve(secrets).unwrap(),
        "http://127.0.0.1:8080/orders/A-1024"
    );
    let auth = request.headers.iter().find(|(n, _)| n == "Authorization").unwrap();
    assert_eq!(auth.1.resolve(secrets).unwrap(), "Bearer t0k");
    assert_eq!(step.state.slots["order_number"], "A-1024");

    // When the API answers, then the status is told and the customer asked whether it helped.
    let body = json!({"id": "A-1024", "status": "shipped", "tracking_number": "SF1234567", "estimated_delivery": "2026-11-27"});
    let step = answer(&flow, &step.state, 1, ok(body));
    assert_eq!(
        say(&step),
        [
            "订单 A-1024 已发货，运单号 SF1234567，预计 2026-11-27 送达。",
            "这些信息对您有帮助吗？"
        ]
    );
    assert!(step.effects.iter().any(|e| e.effect
        == Effect::SetAttribute {
            name: "last_order_number".into(),
            value: "A-1024".into()
        }));
    assert!(step.effects.iter().any(|e| e.effect
        == Effect::Tag {
            tag: "order-status".into()
        }));
    let Some(Effect::Say { quick_replies, .. }) = step.effects.iter().rev().nth(1).map(|e| &e.effect) else {
        panic!("the question comes with quick replies");
    };
    assert_eq!(quick_replies, &["有帮助", "没有，转人工"]);

    // When it helped, then the flow resolves the conversation and asks for a rating.
    let step = message(&flow, &step.state, "有帮助，谢谢");
    assert_eq!(
        step.effects.last().map(|e| &e.effect),
        Some(&Effect::End {
            resolve: true,
            ask_csat: true
        })
    );
    assert!(matches!(
        step.state.status,
        Status::Finished {
            outcome: Outcome::Ended { resolve: true },
            ..
        }
    ));
}

#[test]
fn api_down_retries_twice_then_apologises_and_hands_off() {
    let flow = flow();
    let step = asked_for_order(&flow);
    let step = message(&flow, &step.state, "A-1024");
    // Given the first attempt times out, then a second attempt is asked for after the backoff.
    let step = answer(
        &flow,
        &step.state,
        1,
        CallOutcome::Failed {
            reason: "timed out after 3000 ms".into(),
        },
    );
    assert_eq!(call_of(&step).1, 2);
    assert_eq!(call_of(&step).3, 500);
    assert!(say(&step).is_empty());
    // Given the second cannot connect, then a third, with the backoff doubled.
    let step = answer(
        &flow,
        &step.state,
        2,
        CallOutcome::Failed {
            reason: "connection refused".into(),
        },
    );
    assert_eq!((call_of(&step).1, call_of(&step).3), (3, 1000));
    // Given the third gets a 503, then no more attempts: an apology and a handoff.
    let step = answer(
        &flow,
        &step.state,
        3,
        CallOutcome::Response {
            status: 503,
            body: json!("Service Unavailable"),
        },
    );
    assert_eq!(
        say(&step),
        ["抱歉，订单系统暂时无法访问。我已为您转接人工客服，请稍候。"]
    );
    match step.effects.last().map(|e| &e.effect) {
        Some(Effect::Handoff { queue, priority, note }) => {
            assert_eq!(queue, "general");
            assert_eq!(*priority, 7);
            assert!(note.as_deref().unwrap_or_default().contains("A-1024"));
        }
        other => panic!("expected a handoff, got {other:?}"),
    }
    assert!(matches!(
        &step.state.status,
        Status::Finished { outcome: Outcome::HandedOff { queue }, .. } if queue == "general"
    ));
    // A late result for an attempt already answered is refused, not applied.
    let late = Engine::resume(
        &flow,
        &step.state,
        &ctx(),
        Input::CallResult(CallResult {
            attempt: 3,
            outcome: ok(json!({})),
        }),
    );
    assert!(late.is_err());
}

#[test]
fn invalid_order_number_is_asked_again_then_accepted() {
    let flow = flow();
    let step = asked_for_order(&flow);
    // Given an answer that is no order number, then the re-prompt, and the flow still waits.
    let step = message(&flow, &step.state, "我不记得了");
    assert_eq!(
        say(&step),
        ["抱歉，这看起来不像订单号。订单号类似 A-1024 或 20231125-7781，请再发一次。"]
    );
    assert_eq!(
        step.state.status,
        Status::AwaitingMessage {
            node: "ask_order".into(),
            attempts: 1
        }
    );
    // Given a number too short to be an order number, then the re-prompt again.
    let step = message(&flow, &step.state, "1234");
    assert_eq!(
        step.state.status,
        Status::AwaitingMessage {
            node: "ask_order".into(),
            attempts: 2
        }
    );
    // Given a bare order number at last, then the call.
    let step = message(&flow, &step.state, "20231125");
    assert_eq!(
        call_of(&step).0.url.to_string(),
        "{{secrets.order_api_base}}/orders/20231125"
    );
}

#[test]
fn three_invalid_order_numbers_hand_off() {
    let flow = flow();
    let mut step = asked_for_order(&flow);
    for text in ["不知道", "忘了", "???"] {
        step = message(&flow, &step.state, text);
    }
    assert_eq!(say(&step), ["抱歉，我没能识别您的订单号，正在为您转接人工客服。"]);
    let Some(Effect::Handoff { note, .. }) = step.effects.last().map(|e| &e.effect) else {
        panic!("a handoff");
    };
    assert!(note.as_deref().unwrap_or_default().ends_with("Last message: ???"));
}

#[test]
fn unknown_order_is_said_and_asked_again() {
    let flow = flow();
    let step = asked_for_order(&flow);
    let step = message(&flow, &step.state, "A-9999");
    let step = answer(
        &flow,
        &step.state,
        1,
        CallOutcome::Response {
            status: 404,
            body: json!({"error": "not found"}),
        },
    );
    // A 404 is an answer, not an outage: no retry.
    assert_eq!(
        say(&step),
        [
            "没有找到订单 A-9999，请核对订单号。",
            "好的，我来帮您查询订单。请发送您的订单号（例如 A-1024）。"
        ]
    );
    assert_eq!(
        step.state.status,
        Status::AwaitingMessage {
            node: "ask_order".into(),
            attempts: 0
        }
    );
}

fn at_helped_question(flow: &Flow, status: &str) -> Step {
    let step = asked_for_order(flow);
    let step = message(flow, &step.state, "A-1024");
    answer(flow, &step.state, 1, ok(json!({"status": status})))
}

#[test]
fn a_customer_not_helped_is_offered_a_human() {
    let flow = flow();
    let step = at_helped_question(&flow, "processing");
    assert_eq!(say(&step)[0], "订单 A-1024 正在处理中，发货后会通知您。");
    let step = message(&flow, &step.state, "没有帮助");
    assert_eq!(say(&step), ["抱歉没能帮上忙，正在为您转接人工客服，请稍候。"]);
    let Some(Effect::Handoff { queue, priority, note }) = step.effects.last().map(|e| &e.effect) else {
        panic!("a handoff");
    };
    assert_eq!((queue.as_str(), *priority), ("general", 6));
    assert_eq!(
        note.as_deref(),
        Some("Order status flow: customer not helped. Order A-1024, status processing.")
    );
}

#[test]
fn a_negative_sentiment_hands_off_even_after_yes() {
    let flow = flow();
    let step = at_helped_question(&flow, "delivered");
    let angry = Message {
        text: "是的，但是太慢了！".into(),
        understanding: Understanding {
            sentiment: Some(-0.8),
            ..Understanding::default()
        },
    };
    let step = Engine::resume(&flow, &step.state, &ctx(), Input::Message(angry)).unwrap();
    assert_eq!(step.state.slots["helped"], "yes");
    assert!(matches!(
        step.effects.last().map(|e| &e.effect),
        Some(Effect::Handoff { .. })
    ));
}

#[test]
fn an_unknown_status_is_told_as_the_api_gave_it_and_english_is_followed() {
    let flow = flow();
    let step = Engine::start(
        &flow,
        &Context {
            language: Lang::En,
            ..ctx()
        },
        Some(&Message::text("where is my order")),
    );
    assert_eq!(
        say(&step),
        ["Sure, I can check your order. Please send your order number (for example A-1024)."]
    );
    let english = Message {
        text: "it is ORD-55821".into(),
        understanding: Understanding {
            language: Some(Lang::En),
            ..Understanding::default()
        },
    };
    let step = Engine::resume(&flow, &step.state, &ctx(), Input::Message(english)).unwrap();
    let step = answer(&flow, &step.state, 1, ok(json!({"status": "on_hold"})));
    assert_eq!(
        say(&step),
        ["The current status of order ORD-55821 is: on_hold.", "Did that help?"]
    );
}

#[test]
fn the_shipped_flow_reads_the_same_from_yaml() {
    let yaml_flow = Flow::parse_yaml(include_str!("../examples/order_status.yaml")).unwrap_or_else(|e| panic!("{e:?}"));
    let json_flow = flow();
    assert_eq!(yaml_flow, json_flow);
    assert_eq!(
        json_flow.triggered_by(&Message::text("帮我查询订单")),
        Some(yy_flow::Trigger::Keyword("查询订单".into()))
    );
    let by_intent = Message {
        text: "where's my stuff".into(),
        understanding: Understanding {
            intent: Some("order_status".into()),
            ..Understanding::default()
        },
    };
    assert_eq!(
        json_flow.triggered_by(&by_intent),
        Some(yy_flow::Trigger::Intent("order_status".into()))
    );
    assert_eq!(json_flow.triggered_by(&Message::text("hello")), None);
}

#[test]
fn an_order_number_in_the_first_message_skips_the_question() {
    let flow = flow();
    let step = Engine::start(&flow, &ctx(), Some(&Message::text("订单 A-1024 怎么还没到？")));
    assert!(say(&step).is_empty(), "nothing asked");
    assert_eq!(step.visited, ["ask_order", "lookup"]);
    assert_eq!(
        call_of(&step).0.url.to_string(),
        "{{secrets.order_api_base}}/orders/A-1024"
    );
    // A later question for the same slot, after a 404, is asked: only the first run reads the
    // message that started the flow.
    let step = answer(
        &flow,
        &step.state,
        1,
        CallOutcome::Response {
            status: 404,
            body: Value::Null,
        },
    );
    assert_eq!(say(&step).len(), 2);
    assert!(matches!(step.state.status, Status::AwaitingMessage { .. }));
}
