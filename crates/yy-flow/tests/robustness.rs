//! Property-style checks with a seeded generator: no input panics the parser or the engine, the
//! state is always the fold of the events, and it stays small.

use serde_json::{Value, json};
use yy_flow::{
    CallOutcome, CallResult, Context, Engine, Flow, FlowState, Input, Lang, Message, RecordedConversation,
    RecordedTurn, Status, Understanding, replay,
};

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
    fn text(&mut self) -> String {
        let len = self.below(40);
        (0..len)
            .map(|_| {
                let c = match self.below(7) {
                    0 => char::from_u32(0x20 + self.below(0x5f) as u32),
                    1 => char::from_u32(0x4E00 + self.below(0x5000) as u32),
                    2 => Some(['{', '}', '#', '-', '年', '月', '日', '.', ':'][self.below(9)]),
                    3 => char::from_u32(0x30 + self.below(10) as u32),
                    4 => char::from_u32(0xFF10 + self.below(10) as u32),
                    5 => Some(
                        ["是", "不", "没有", "A-1024", "明天", "12月3号", "三"][self.below(7)]
                            .chars()
                            .next()
                            .unwrap_or('x'),
                    ),
                    _ => char::from_u32(self.next() as u32 % 0x11_0000),
                };
                c.unwrap_or('\u{fffd}')
            })
            .collect()
    }
    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.next().is_multiple_of(2)),
            2 => json!(self.next() as i64 % 1000),
            3 => json!(self.text()),
            4 => json!(
                [
                    "order_number",
                    "{{slot.x}}",
                    "ask",
                    "say",
                    "end",
                    "a",
                    "{{call.body.status}}"
                ][self.below(7)]
            ),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let keys = [
                    "id", "type", "next", "text", "when", "slot", "equals", "cases", "validate", "zh", "x",
                ];
                Value::Object(
                    (0..self.below(4))
                        .map(|_| (keys[self.below(keys.len())].to_owned(), self.value(depth + 1)))
                        .collect(),
                )
            }
        }
    }
}

fn example() -> Value {
    serde_json::from_str(include_str!("../examples/order_status.json")).unwrap()
}

/// Replaces one random sub-value of `doc` with a random value.
fn mutate(doc: &mut Value, rng: &mut Rng) {
    let stop = rng.below(4) == 0;
    match doc {
        Value::Object(map) if !map.is_empty() && !stop => {
            let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
            if let Some(inner) = map.get_mut(&key) {
                mutate(inner, rng);
            }
        }
        Value::Array(items) if !items.is_empty() && !stop => {
            let i = rng.below(items.len());
            if let Some(inner) = items.get_mut(i) {
                mutate(inner, rng);
            }
        }
        _ => *doc = rng.value(0),
    }
}

#[test]
fn arbitrary_text_never_panics_the_parsers() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let source = include_str!("../examples/order_status.json");
    let yaml = include_str!("../examples/order_status.yaml");
    for round in 0..400 {
        let text = match round % 4 {
            0 => rng.text(),
            1 => {
                // The example cut short somewhere.
                let cut = rng.below(source.len());
                source.get(..cut).unwrap_or(source).to_owned()
            }
            2 => {
                let cut = rng.below(yaml.len());
                yaml.get(..cut).unwrap_or(yaml).to_owned()
            }
            _ => {
                let mut chars = source.chars().collect::<Vec<_>>();
                for _ in 0..5 {
                    let i = rng.below(chars.len());
                    chars[i] = rng.text().chars().next().unwrap_or('"');
                }
                chars.into_iter().collect()
            }
        };
        let _ = Flow::parse_json(&text);
        let _ = Flow::parse_yaml(&text);
    }
}

#[test]
fn arbitrary_documents_are_refused_or_run_without_panicking() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for _ in 0..600 {
        let mut doc = example();
        for _ in 0..=rng.below(3) {
            mutate(&mut doc, &mut rng);
        }
        match Flow::parse_json(&doc.to_string()) {
            Ok(flow) => {
                accepted += 1;
                drive(&flow, &mut rng, 12);
            }
            Err(errors) => {
                assert!(!errors.is_empty());
                for e in &errors {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    assert!(accepted > 10, "some mutations keep the flow valid: {accepted}");
}

fn random_input(rng: &mut Rng, state: &FlowState) -> Input {
    let attempt = match state.status {
        Status::AwaitingCall { attempt, .. } if rng.below(8) != 0 => attempt,
        _ => rng.below(5) as u32,
    };
    match rng.below(6) {
        0 | 1 => Input::Message(Message {
            text: rng.text(),
            understanding: Understanding {
                intent: (rng.below(2) == 0).then(|| "order_status".to_owned()),
                sentiment: [None, Some(-0.9), Some(0.4), Some(f32::NAN)][rng.below(4)],
                language: [None, Some(Lang::Zh), Some(Lang::En)][rng.below(3)],
                order_numbers: if rng.below(5) == 0 { vec![rng.text()] } else { vec![] },
                ..Understanding::default()
            },
        }),
        2 | 3 => Input::CallResult(CallResult {
            attempt,
            outcome: if rng.below(3) == 0 {
                CallOutcome::Failed { reason: rng.text() }
            } else {
                CallOutcome::Response {
                    status: [200, 201, 404, 500, 503, 429, 400, 0, 999][rng.below(9)],
                    body: if rng.below(2) == 0 {
                        {
                            let status = ["shipped", "delivered", "paid", "cancelled", "weird"][rng.below(5)];
                            json!({"status": status, "tracking_number": rng.text()})
                        }
                    } else {
                        rng.value(0)
                    },
                }
            },
        }),
        4 => Input::KbResult {
            answered: rng.below(2) == 0,
        },
        _ => Input::Message(Message::text(
            ["A-1024", "有帮助", "没有", "88123456", "", "是的"][rng.below(6)],
        )),
    }
}

/// Runs `flow` on random inputs; every accepted step's state is the fold of all events so far.
fn drive(flow: &Flow, rng: &mut Rng, steps: usize) {
    let ctx = Context {
        now_ms: (rng.next() % 4_000_000_000_000) as i64 - 1_000_000_000_000,
        utc_offset_minutes: rng.below(1_441) as i32 - 720,
        language: if rng.below(2) == 0 { Lang::Zh } else { Lang::En },
        ..Context::default()
    };
    let first = Engine::start(
        flow,
        &ctx,
        (rng.below(2) == 0).then(|| Message::text(rng.text())).as_ref(),
    );
    let mut events = first.events.clone();
    let mut state = first.state;
    for _ in 0..steps {
        let input = random_input(rng, &state);
        match Engine::resume(flow, &state, &ctx, input) {
            Ok(step) => {
                events.extend(step.events.iter().cloned());
                assert_eq!(FlowState::from_events(&events).as_ref(), Some(&step.state));
                let size = serde_json::to_string(&step.state).map_or(0, |s| s.len());
                assert!(size < 16 * 1024, "state of {size} bytes");
                state = step.state;
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn arbitrary_inputs_never_panic_the_order_status_flow() {
    let flow = Flow::parse_json(include_str!("../examples/order_status.json")).unwrap();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..300 {
        drive(&flow, &mut rng, 20);
    }
}

#[test]
fn arbitrary_recordings_replay_without_panicking() {
    let flow = Flow::parse_json(include_str!("../examples/order_status.json")).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..200 {
        let recorded = RecordedConversation {
            id: "c".into(),
            context: Context::default(),
            turns: (0..rng.below(6))
                .map(|_| RecordedTurn {
                    now_ms: None,
                    message: Message::text(["查询订单", "A-1024", "没有", &rng.text()][rng.below(4)]),
                })
                .collect(),
            calls: (0..rng.below(4))
                .map(|_| yy_flow::RecordedCall {
                    method: "GET".into(),
                    url: "{{secrets.order_api_base}}/orders/A-1024".into(),
                    outcome: CallOutcome::Response {
                        status: [200, 404, 503][rng.below(3)],
                        body: rng.value(0),
                    },
                })
                .collect(),
            kb: vec![],
        };
        let t = replay(&flow, &recorded);
        assert_eq!(t.turns.len(), recorded.turns.len());
        assert!(yy_flow::diff(&t, &t).is_empty());
    }
}

#[test]
fn tampered_states_are_refused_or_resumed_without_panicking() {
    let flow = Flow::parse_json(include_str!("../examples/order_status.json")).unwrap();
    let ids = flow.node_ids().map(str::to_owned).collect::<Vec<_>>();
    let mut rng = Rng(0x0bad_c0de_0bad_c0de);
    let ctx = Context::default();
    let start = Engine::start(&flow, &ctx, None).state;
    for _ in 0..500 {
        let mut state = start.clone();
        let node = if rng.below(5) == 0 {
            rng.text()
        } else {
            ids[rng.below(ids.len())].clone()
        };
        state.status = match rng.below(4) {
            0 => Status::AwaitingMessage {
                node,
                attempts: rng.below(256) as u8,
            },
            1 => Status::AwaitingCall {
                node,
                attempt: rng.below(10) as u32,
            },
            2 => Status::AwaitingKb { node },
            _ => Status::Finished {
                node,
                outcome: yy_flow::Outcome::Stopped,
            },
        };
        if rng.below(3) == 0 {
            state.slots.insert("order_number".into(), rng.value(0));
        }
        let input = random_input(&mut rng, &state);
        if let Ok(step) = Engine::resume(&flow, &state, &ctx, input) {
            assert!(!step.visited.is_empty());
        }
    }
}
