//! Flow validation: every mistake found at once, each naming the node and the field.

use serde_json::{Value, json};
use yy_flow::{Flow, FlowError, FlowErrorKind, Severity};

fn doc(nodes: Value) -> String {
    json!({"id": "t", "version": 1, "start": "a", "nodes": nodes}).to_string()
}

fn errors(nodes: Value) -> Vec<FlowError> {
    Flow::parse_json(&doc(nodes)).expect_err("the flow must be refused")
}

fn find(errors: &[FlowError], kind: FlowErrorKind) -> &FlowError {
    errors
        .iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {errors:#?}"))
}

#[test]
fn an_unknown_node_reference_names_the_node_and_field() {
    let e = errors(json!([
        {"id": "a", "type": "say", "text": "hi", "next": "b"},
        {"id": "b", "type": "branch", "cases": [{"when": {"channel": "web"}, "next": "nowhere"}], "default": "a"}
    ]));
    let err = find(&e, FlowErrorKind::UnknownNode);
    assert_eq!(err.node_index, Some(1));
    assert_eq!(err.node_id.as_deref(), Some("b"));
    assert_eq!(err.path, "cases[0].next");
    assert_eq!(err.to_string(), r#"nodes[1] "b": cases[0].next: no node "nowhere""#);
}

#[test]
fn a_loop_that_never_waits_for_input_names_its_nodes() {
    let e = errors(json!([
        {"id": "a", "type": "say", "text": "hi", "next": "b"},
        {"id": "b", "type": "call", "request": {"url": "https://x.example/"}, "next": "c", "on_error": "c"},
        {"id": "c", "type": "set", "tags": ["x"], "next": "b"}
    ]));
    let err = find(&e, FlowErrorKind::NonWaitingLoop);
    assert_eq!(err.node_id.as_deref(), Some("b"));
    assert!(err.message.contains("loop that never waits for input"), "{err}");
    assert!(err.message.contains(r#""b" → "c""#), "{err}");
    assert_eq!(e.iter().filter(|e| e.kind == FlowErrorKind::NonWaitingLoop).count(), 1);

    let self_loop = errors(
        json!([{"id": "a", "type": "branch", "cases": [{"when": {"channel": "web"}, "next": "a"}], "default": "a"}]),
    );
    assert_eq!(
        find(&self_loop, FlowErrorKind::NonWaitingLoop).node_id.as_deref(),
        Some("a")
    );
}

#[test]
fn a_loop_through_an_ask_is_fine() {
    let flow = Flow::parse_json(&doc(json!([
        {"id": "a", "type": "ask", "slot": "x", "prompt": "?", "validate": {"text": {}}, "next": "b", "on_invalid": "a"},
        {"id": "b", "type": "say", "text": "{{slot.x}}", "next": "a"}
    ])))
    .unwrap();
    assert!(flow.warnings().is_empty(), "{:?}", flow.warnings());
}

#[test]
fn bad_templates_name_the_node_and_field() {
    let e = errors(json!([
        {"id": "a", "type": "say", "text": {"zh": "你好 {{contact.name", "en": "{{weather.today}}"}, "next": "b"},
        {"id": "b", "type": "handoff", "queue": "general", "note": "{{secrets.key}}"}
    ]));
    let bad = e
        .iter()
        .filter(|e| e.kind == FlowErrorKind::Template)
        .collect::<Vec<_>>();
    assert_eq!(bad.len(), 3, "{e:#?}");
    assert_eq!(
        (bad[0].node_id.as_deref(), bad[0].path.as_str()),
        (Some("a"), "text.zh")
    );
    assert!(bad[0].message.contains("never closed"));
    assert_eq!(bad[1].path, "text.en");
    assert!(bad[1].message.contains("unknown namespace"));
    assert_eq!((bad[2].node_id.as_deref(), bad[2].path.as_str()), (Some("b"), "note"));
    assert!(bad[2].message.contains("only allowed in a call"));
}

#[test]
fn every_mistake_is_reported_at_once() {
    let e = errors(json!([
        {"id": "a", "type": "ask", "slot": "Bad Slot", "prompt": "", "validate": {"pattern": "("},
         "max_attempts": 0, "next": "b", "on_invalid": "zz"},
        {"id": "b", "type": "call", "request": {"method": "FETCH", "url": "ftp://x/{{slot.nope}}", "body": {"a": 1}},
         "timeout_ms": 10, "retries": 9, "save": {"s": "headers.x"}, "next": "a", "on_status": {"200": "a"}, "on_error": "a"},
        {"id": "a", "type": "end"},
        {"id": "c", "type": "weird"},
        {"id": "d", "type": "say", "text": "x", "colour": "red"},
        {"id": "e", "type": "handoff", "queue": "general", "priority": 11},
        {"id": "f", "type": "branch", "cases": [{"when": {"sentiment": {"below": 3}}, "next": "a"}], "default": "a"}
    ]));
    let shown = e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    for needle in [
        r#"nodes[0] "a": slot: must be"#,
        r#"nodes[0] "a": prompt: must not be empty"#,
        r#"nodes[0] "a": validate.pattern: not a regular expression"#,
        r#"nodes[0] "a": max_attempts: must be 1 to 10"#,
        r#"nodes[0] "a": on_invalid: no node "zz""#,
        r#"nodes[1] "b": request.method"#,
        r#"nodes[1] "b": request.url: must start with http"#,
        r#"nodes[1] "b": timeout_ms"#,
        r#"nodes[1] "b": retries"#,
        r#"nodes[1] "b": save.s"#,
        r#"nodes[1] "b": on_status.200"#,
        r#"nodes[2] "a": id: "a" is already the id of nodes[0]"#,
        r#"nodes[3] "c": type: unknown node type "weird""#,
        r#"nodes[4] "d": colour: unknown field `colour`"#,
        r#"nodes[5] "e": priority: must be 1 to 10"#,
        r#"nodes[6] "f": cases[0].when.sentiment.below: must be between -1 and 1"#,
    ] {
        assert!(shown.contains(needle), "missing {needle:?} in\n{shown}");
    }
}

#[test]
fn shape_errors_carry_the_field_path() {
    let e = errors(json!([
        {"id": "a", "type": "ask", "slot": "x", "prompt": "?", "validate": {"number": {"min": "one"}}, "next": "a", "on_invalid": "a"}
    ]));
    assert_eq!(e[0].kind, FlowErrorKind::Shape);
    assert_eq!(e[0].path, "validate.number.min");
    let e = errors(json!([{"id": "a", "type": "say", "text": {"zh": "好", "fr": "bien"}}]));
    assert_eq!(e[0].path, "text.fr", "{e:?}");
    assert!(e[0].message.contains("unknown field `fr`"), "{e:?}");
    let e = errors(json!([{"id": "a", "type": "say", "text": 3}]));
    assert!(
        e[0].message.contains(r#"a string, or an object with "zh" and/or "en""#),
        "{e:?}"
    );
    let e = errors(json!([{"id": "a", "type": "say"}]));
    assert!(e[0].message.contains("missing field `text`"), "{e:?}");
    let e = Flow::parse_json(r#"{"id": "t", "version": 1, "start": "a", "nodes": [], "extra": 1}"#).unwrap_err();
    assert!(e[0].message.contains("unknown field `extra`"), "{e:?}");
    let e = Flow::parse_json(r#"{"id": "t", "version": 1, "start": "a", "start": "b", "nodes": []}"#).unwrap_err();
    assert!(e[0].message.contains("duplicate key"), "{e:?}");
    let e =
        Flow::parse_yaml("id: t\nversion: 1\nstart: a\nnodes:\n  - id: a\n    type: say\n    text: [1\n").unwrap_err();
    assert_eq!(e[0].kind, FlowErrorKind::Syntax);
}

#[test]
fn document_level_mistakes_name_the_field() {
    let e = Flow::parse_json(r#"{"id": "Bad Id", "version": 0, "start": "x", "nodes": []}"#).unwrap_err();
    let shown = e.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(shown.iter().any(|s| s.starts_with("id: must be")), "{shown:?}");
    assert!(shown.iter().any(|s| s == "version: must be at least 1"), "{shown:?}");
    assert!(shown.iter().any(|s| s == r#"start: no node "x""#), "{shown:?}");
    assert!(shown.iter().any(|s| s == "nodes: must not be empty"), "{shown:?}");
}

#[test]
fn a_slot_no_node_sets_is_refused_and_one_maybe_unset_is_a_warning() {
    let e = errors(json!([{"id": "a", "type": "say", "text": "{{slot.typo}}"}]));
    let err = find(&e, FlowErrorKind::UnknownSlot);
    assert_eq!((err.node_id.as_deref(), err.path.as_str()), (Some("a"), "text"));

    let flow = Flow::parse_json(&doc(json!([
        {"id": "a", "type": "ask", "slot": "x", "prompt": "?", "validate": {"text": {}}, "next": "b", "on_invalid": "b"},
        {"id": "b", "type": "say", "text": "{{slot.x}}"},
        {"id": "orphan", "type": "end"}
    ])))
    .unwrap();
    let warnings = flow.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    assert_eq!(warnings[0].kind, FlowErrorKind::MaybeUnsetSlot);
    assert_eq!(warnings[0].node_id.as_deref(), Some("b"));
    assert_eq!(warnings[1].kind, FlowErrorKind::Unreachable);
    assert_eq!(warnings[1].node_id.as_deref(), Some("orphan"));
}

#[test]
fn secrets_belong_in_call_urls_and_headers_only() {
    let ok = Flow::parse_json(&doc(json!([
        {"id": "a", "type": "call", "request": {"url": "{{secrets.base}}/x", "headers": {"Authorization": "Bearer {{secrets.t}}"}},
         "next": "b", "on_error": "b"},
        {"id": "b", "type": "end"}
    ])));
    assert!(ok.is_ok(), "{ok:?}");
    let e = errors(json!([
        {"id": "a", "type": "call", "request": {"method": "POST", "url": "https://x.example", "body": {"key": "{{secrets.k}}"}},
         "next": "b", "on_error": "b"},
        {"id": "b", "type": "end"}
    ]));
    assert_eq!(find(&e, FlowErrorKind::Template).path, "request.body.key");
}

#[test]
fn limits_are_enforced() {
    let nodes = (0..201)
        .map(|i| json!({"id": format!("n{i}"), "type": "end"}))
        .collect::<Vec<_>>();
    let e = errors(Value::Array(nodes));
    assert_eq!(e[0].kind, FlowErrorKind::TooLarge);
    let huge = "x".repeat(yy_flow::MAX_DOCUMENT_BYTES + 1);
    assert_eq!(Flow::parse_json(&huge).unwrap_err()[0].kind, FlowErrorKind::TooLarge);
    let e = errors(json!([{"id": "a", "type": "say", "text": "y".repeat(5000)}]));
    assert_eq!(e[0].kind, FlowErrorKind::TooLarge);
    assert_eq!(e[0].path, "text");
}

#[test]
fn choice_answers_must_not_choose_two_options() {
    let e = errors(json!([
        {"id": "a", "type": "ask", "slot": "x", "prompt": "?", "next": "a", "on_invalid": "a",
         "validate": {"choice": [{"value": "yes", "synonyms": ["ok"]}, {"value": "no", "synonyms": ["OK!"]}]}}
    ]));
    let err = find(&e, FlowErrorKind::Duplicate);
    assert_eq!(err.path, "validate.choice[1].synonyms[0]");
}

#[test]
fn a_list_where_an_object_belongs_is_refused() {
    for (node, path) in [
        (
            json!({"id": "a", "type": "say", "text": "x", "card": [{"zh": "t"}]}),
            "card",
        ),
        (
            json!({"id": "a", "type": "say", "text": "x", "card": {"title": "t", "buttons": [["l", "u"]]}}),
            "card.buttons[0]",
        ),
        (
            json!({"id": "a", "type": "branch", "cases": [[{"channel": "web"}, "a"]], "default": "a"}),
            "cases[0]",
        ),
        (
            json!({"id": "a", "type": "ask", "slot": "x", "prompt": "?", "validate": {"number": [1, 2]}, "next": "a", "on_invalid": "a"}),
            "validate.number",
        ),
        (
            json!({"id": "a", "type": "ask", "slot": "x", "prompt": "?", "validate": {"choice": [["yes", []]]}, "next": "a", "on_invalid": "a"}),
            "validate.choice[0]",
        ),
    ] {
        let e = errors(json!([node]));
        assert_eq!((e[0].kind, e[0].path.as_str()), (FlowErrorKind::Shape, path), "{e:?}");
    }
    let e =
        Flow::parse_json(r#"{"id": "t", "version": 1, "start": "a", "triggers": [["x"]], "nodes": []}"#).unwrap_err();
    assert_eq!(e[0].path, "triggers");
}
