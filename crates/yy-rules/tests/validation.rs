//! Every kind of mistake a tenant can make, with the exact message and path it gets.

use serde_json::{Value, json};
use yy_rules::{MAX_JSON_BYTES, MAX_RULES, RuleError, RuleErrorKind, RuleSet};

fn errors_of(json: &str) -> Vec<RuleError> {
    match RuleSet::parse(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(errors) => errors,
    }
}

/// The displayed errors of a set whose rules are `rules`, version 1.
fn errors(rules: Value) -> Vec<String> {
    let json = json!({"version": 1, "rules": rules}).to_string();
    errors_of(&json).iter().map(ToString::to_string).collect()
}

/// The displayed errors of one rule "r" with conditions `when`, before a valid default.
fn when_errors(when: Value) -> Vec<String> {
    errors(json!([
        {"name": "r", "when": when, "then": {"route": "bot"}},
        {"name": "default", "then": {"route": "bot"}}
    ]))
}

/// The displayed errors of one rule "r" with action `then`, before a valid default.
fn then_errors(then: Value) -> Vec<String> {
    errors(json!([
        {"name": "r", "when": {"fallback": true}, "then": then},
        {"name": "default", "then": {"route": "bot"}}
    ]))
}

fn kinds(json: &str) -> Vec<RuleErrorKind> {
    errors_of(json).iter().map(|e| e.kind).collect()
}

#[test]
fn not_json() {
    let e = errors_of(r#"{"version": 1, "rules": [}"#);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, RuleErrorKind::Syntax);
    assert_eq!(e[0].to_string(), "invalid JSON: expected value at line 1 column 26");
    assert_eq!(kinds(""), [RuleErrorKind::Syntax]);
    assert_eq!(
        kinds(r#"{"version": 1, "rules": []} trailing"#),
        [RuleErrorKind::Syntax]
    );
}

#[test]
fn envelope_shape() {
    let show = |json: &str| errors_of(json).iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(show("[]"), ["invalid length 0, expected an object"]);
    assert_eq!(show("[1, []]"), ["expected an object"]);
    assert_eq!(show(r#"{"version": 1}"#), ["rules: is required"]);
    assert_eq!(
        show(r#"{"version": "1", "rules": []}"#),
        [r#"version: invalid type: string "1", expected a whole number from 0"#]
    );
    assert_eq!(
        show(r#"{"version": 1, "rules": [], "comment": "x"}"#),
        ["comment: unknown field; expected `version` or `rules`"]
    );
    assert_eq!(
        show(r#"{"version": 1, "rules": {}}"#),
        ["rules: invalid type: map, expected an array"]
    );
}

#[test]
fn rule_shape() {
    assert_eq!(
        when_errors(json!({"sentimentt": {"below": 0}})),
        [
            "rules[0] \"r\": when.sentimentt: unknown field; expected one of `intent`, `sentiment`, `sentiment_label`, \
             `language`, `channel`, `contact_attributes`, `keywords`, `business_hours`, `waiting_seconds`, \
             `fallback`, `ambiguous`, `handoff_requested`, `repeated_low_confidence`"
        ]
    );
    assert_eq!(
        when_errors(json!({"sentiment": {"below": "low"}})),
        [r#"rules[0] "r": when.sentiment.below: invalid type: string "low", expected a number"#]
    );
    assert_eq!(
        when_errors(json!({"language": ["zh", "fr"]})),
        [r#"rules[0] "r": when.language[1]: unknown variant `fr`, expected one of `zh`, `en`, `mixed`"#]
    );
    assert_eq!(
        when_errors(json!({"contact_attributes": {"tier": {"one_of": ["vip"], "present": true}}})),
        [r#"rules[0] "r": when.contact_attributes.tier: give exactly one of "one_of" and "present""#]
    );
    assert_eq!(
        when_errors(json!({"contact_attributes": {"tier": ["vip"]}})),
        [r#"rules[0] "r": when.contact_attributes.tier: expected an object"#]
    );
    assert_eq!(
        when_errors(json!({"business_hours": {"utc_offset_minutes": 0, "schedule": {"monday": ["09:00-18:00"]}}})),
        [
            "rules[0] \"r\": when.business_hours.schedule.monday: unknown field; expected one of `mon`, `tue`, \
             `wed`, `thu`, `fri`, `sat`, `sun`"
        ]
    );
    assert_eq!(
        when_errors(json!({"business_hours": {"schedule": {"mon": ["09:00-18:00"]}}})),
        [r#"rules[0] "r": when.business_hours.utc_offset_minutes: is required"#]
    );
    assert_eq!(
        then_errors(json!({"route": "agent"})),
        ["rules[0] \"r\": then.route: unknown variant `agent`, expected `bot` or `queue`"]
    );
    assert_eq!(
        then_errors(json!(["bot"])),
        [r#"rules[0] "r": then: expected an object"#]
    );
    assert_eq!(
        errors(json!([{"name": "r"}, {"name": "default", "then": {"route": "bot"}}])),
        [r#"rules[0] "r": then: is required"#]
    );
    assert_eq!(
        errors(json!([{"name": 5, "then": {"route": "bot"}}])),
        ["rules[0]: name: invalid type: integer `5`, expected a string"]
    );
    assert_eq!(
        errors(json!(["default"])),
        [r#"rules[0]: invalid type: string "default", expected an object"#]
    );
}

#[test]
fn duplicate_json_keys_are_refused() {
    let json = r#"{"version": 1, "rules": [{"name": "d", "then": {"route": "bot", "route": "queue"}}]}"#;
    let e = errors_of(json);
    assert_eq!(e[0].to_string(), r#"rules[0] "d": then.route: appears twice"#);
    assert_eq!(e[0].kind, RuleErrorKind::Shape);
}

#[test]
fn errors_are_located_by_rule_and_path() {
    let e = &when_errors(json!({"sentiment": {"below": -3}}))[0];
    assert_eq!(e, r#"rules[0] "r": when.sentiment.below: must be between -1 and 1"#);

    let json = json!({"version": 1, "rules": [
        {"name": "a", "when": {"fallback": true}, "then": {"route": "bot"}},
        {"name": "vip-angry", "when": {"sentiment": {"below": 1.5}}, "then": {"route": "bot"}},
        {"name": "default", "then": {"route": "bot"}}
    ]});
    let e = errors_of(&json.to_string());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rule_index, Some(1));
    assert_eq!(e[0].rule_name.as_deref(), Some("vip-angry"));
    assert_eq!(e[0].path, "when.sentiment.below");
    assert_eq!(e[0].kind, RuleErrorKind::Invalid);
    assert_eq!(e[0].message, "must be between -1 and 1");
    assert_eq!(
        e[0].to_string(),
        r#"rules[1] "vip-angry": when.sentiment.below: must be between -1 and 1"#
    );
    // Errors serialise for an API answer.
    assert_eq!(
        serde_json::to_value(&e[0]).expect("serialises"),
        json!({"rule_index": 1, "rule_name": "vip-angry", "path": "when.sentiment.below",
               "kind": "invalid", "message": "must be between -1 and 1"})
    );
}

#[test]
fn every_mistake_is_reported_in_one_round() {
    let e = errors(json!([
        {"name": "Bad Name", "when": {"fallback": "yes"}, "then": {"route": "bot"}},
        {"name": "ok", "when": {"sentiment": {"above": 2}}, "then": {"route": "queue"}},
        {"name": "ok", "when": {"channel": []}, "then": {"route": "bot", "priority": 3}},
        {"name": "default", "then": {"route": "bot"}}
    ]));
    assert_eq!(
        e,
        [
            r#"rules[0] "Bad Name": when.fallback: invalid type: string "yes", expected a boolean"#,
            r#"rules[1] "ok": when.sentiment.above: must be between -1 and 1"#,
            r#"rules[1] "ok": then.queue: is required when route is "queue""#,
            r#"rules[2] "ok": when.channel: must not be empty"#,
            r#"rules[2] "ok": then.priority: only allowed when route is "queue""#,
            r#"rules[2] "ok": name: "ok" is already the name of rules[1]"#,
        ]
    );
}

#[test]
fn names() {
    for bad in ["", "Vip", "vip angry", "vip.angry", "退款", &"x".repeat(65)] {
        let e = errors(json!([{"name": bad, "then": {"route": "bot"}}]));
        let expected = format!(
            "rules[0] {}: name: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
            serde_json::to_string(&if bad.chars().count() > 80 {
                format!("{}…", &bad[..80])
            } else {
                bad.to_owned()
            })
            .expect("a string")
        );
        assert_eq!(e, [expected], "{bad:?}");
    }
    for good in ["a", "vip-angry", "rule_2", &"x".repeat(64)] {
        assert!(
            RuleSet::parse(&json!({"version": 1, "rules": [{"name": good, "then": {"route": "bot"}}]}).to_string())
                .is_ok()
        );
    }
    assert_eq!(
        errors(json!([
            {"name": "a", "when": {"fallback": true}, "then": {"route": "bot"}},
            {"name": "a", "then": {"route": "bot"}}
        ])),
        [r#"rules[1] "a": name: "a" is already the name of rules[0]"#]
    );
    assert_eq!(
        errors(json!([{"name": "d", "description": "x".repeat(501), "then": {"route": "bot"}}])),
        [r#"rules[0] "d": description: at most 500 characters"#]
    );
}

#[test]
fn version() {
    assert_eq!(
        errors_of(r#"{"version": 0, "rules": [{"name": "d", "then": {"route": "bot"}}]}"#)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["version: must be at least 1"]
    );
}

#[test]
fn missing_default() {
    let e = errors_of(r#"{"version": 1, "rules": []}"#);
    assert_eq!(
        e[0].to_string(),
        "rules: must not be empty; the last rule is the default"
    );
    assert_eq!(e[0].kind, RuleErrorKind::MissingDefault);

    let json = json!({"version": 1, "rules": [{"name": "only", "when": {"fallback": true}, "then": {"route": "bot"}}]});
    let e = errors_of(&json.to_string());
    assert_eq!(
        e[0].to_string(),
        r#"rules[0] "only": when: the last rule is the default and must have no conditions"#
    );
    assert_eq!(e[0].kind, RuleErrorKind::MissingDefault);
    // `"when": {}` is no conditions: a valid default.
    let json = json!({"version": 1, "rules": [{"name": "d", "when": {}, "then": {"route": "bot"}}]});
    assert!(RuleSet::parse(&json.to_string()).is_ok());
}

#[test]
fn unreachable_rules() {
    let json = json!({"version": 1, "rules": [
        {"name": "a", "when": {"fallback": true}, "then": {"route": "bot"}},
        {"name": "catch-all", "then": {"route": "bot"}},
        {"name": "hidden", "when": {"ambiguous": true}, "then": {"route": "bot"}},
        {"name": "default", "then": {"route": "bot"}}
    ]});
    let e = errors_of(&json.to_string());
    assert_eq!(
        e.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            r#"rules[2] "hidden": unreachable: rules[1] "catch-all" has no conditions and always matches first"#,
            r#"rules[3] "default": unreachable: rules[1] "catch-all" has no conditions and always matches first"#,
        ]
    );
    assert!(e.iter().all(|e| e.kind == RuleErrorKind::Unreachable));

    assert_eq!(
        errors(json!([
            {"name": "a", "when": {"channel": ["web"], "fallback": true}, "then": {"route": "bot"}},
            {"name": "b", "when": {"fallback": true, "channel": ["web"]}, "then": {"route": "queue", "queue": "q"}},
            {"name": "default", "then": {"route": "bot"}}
        ])),
        [r#"rules[1] "b": unreachable: rules[0] "a" has the same conditions and matches first"#]
    );
}

#[test]
fn unknown_queues() {
    let json = json!({"version": 1, "rules": [
        {"name": "a", "when": {"fallback": true}, "then": {"route": "queue", "queue": "vipp"}},
        {"name": "default", "then": {"route": "queue", "queue": "general"}}
    ]})
    .to_string();
    assert!(
        RuleSet::parse(&json).is_ok(),
        "without a list, any well-formed queue name is accepted"
    );
    let e = match RuleSet::parse_with_queues(&json, &["vip", "general"]) {
        Ok(_) => panic!("accepted an unknown queue"),
        Err(e) => e,
    };
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].to_string(), r#"rules[0] "a": then.queue: unknown queue "vipp""#);
    assert_eq!(e[0].kind, RuleErrorKind::UnknownQueue);
    let known = vec!["vipp".to_owned(), "general".to_owned()];
    assert!(RuleSet::parse_with_queues(&json, &known).is_ok());
}

#[test]
fn actions() {
    assert_eq!(
        then_errors(json!({"route": "bot", "queue": "vip", "skills": [], "languages": ["zh"]})),
        [
            r#"rules[0] "r": then.queue: only allowed when route is "queue""#,
            r#"rules[0] "r": then.skills: only allowed when route is "queue""#,
            r#"rules[0] "r": then.languages: only allowed when route is "queue""#,
        ]
    );
    assert_eq!(
        then_errors(json!({"route": "queue"})),
        [r#"rules[0] "r": then.queue: is required when route is "queue""#]
    );
    assert_eq!(
        then_errors(json!({"route": "queue", "queue": "VIP Desk"})),
        [r#"rules[0] "r": then.queue: must be 1 to 64 characters of a-z, 0-9, '_' and '-'"#]
    );
    for bad in [0, 11, 300] {
        assert_eq!(
            then_errors(json!({"route": "queue", "queue": "q", "priority": bad})),
            [r#"rules[0] "r": then.priority: must be between 1 and 10"#]
        );
    }
    assert_eq!(
        then_errors(json!({"route": "queue", "queue": "q", "priority": -1})),
        ["rules[0] \"r\": then.priority: invalid value: integer `-1`, expected a whole number from 0 to 4294967295"]
    );
    assert_eq!(
        then_errors(json!({"route": "queue", "queue": "q", "skills": [
            {"name": "refund", "min_level": 6}, {"name": "Refund"}, {"name": "refund", "min_level": 0}
        ]})),
        [
            r#"rules[0] "r": then.skills[0].min_level: must be between 1 and 5"#,
            r#"rules[0] "r": then.skills[1].name: must be 1 to 64 characters of a-z, 0-9, '_' and '-'"#,
            r#"rules[0] "r": then.skills[2].name: "refund" repeats then.skills[0]"#,
            r#"rules[0] "r": then.skills[2].min_level: must be between 1 and 5"#,
        ]
    );
    assert_eq!(
        then_errors(json!({"route": "queue", "queue": "q", "skills": [{"level": 2}]})),
        ["rules[0] \"r\": then.skills[0].level: unknown field; expected `name` or `min_level`"]
    );
    assert_eq!(
        then_errors(json!({"route": "queue", "queue": "q", "languages": ["zh", "zh"]})),
        [r#"rules[0] "r": then.languages[1]: "zh" appears twice"#]
    );
    assert_eq!(
        then_errors(json!({"route": "bot", "add_tags": ["ok", " padded", "", "x".repeat(51), "ok"]})),
        [
            r#"rules[0] "r": then.add_tags[1]: must be 1 to 50 characters, without control characters or surrounding spaces"#,
            r#"rules[0] "r": then.add_tags[2]: must be 1 to 50 characters, without control characters or surrounding spaces"#,
            r#"rules[0] "r": then.add_tags[3]: must be 1 to 50 characters, without control characters or surrounding spaces"#,
            r#"rules[0] "r": then.add_tags[4]: "ok" appears twice"#,
        ]
    );
    let many = (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>();
    assert_eq!(
        then_errors(json!({"route": "bot", "add_tags": many})),
        [r#"rules[0] "r": then.add_tags: at most 20 tags"#]
    );
}

#[test]
fn intent() {
    assert_eq!(
        when_errors(json!({"intent": {"one_of": ["refund"], "min_confidence": 1.5}})),
        [r#"rules[0] "r": when.intent.min_confidence: must be between 0 and 1"#]
    );
    assert_eq!(
        when_errors(json!({"intent": {"one_of": []}})),
        [r#"rules[0] "r": when.intent.one_of: must not be empty"#]
    );
    assert_eq!(
        when_errors(json!({"intent": {"one_of": ["refund", " refund", "refund"]}})),
        [
            r#"rules[0] "r": when.intent.one_of[1]: must be 1 to 128 characters, without control characters or surrounding spaces"#,
            r#"rules[0] "r": when.intent.one_of[2]: "refund" appears twice"#,
        ]
    );
    assert_eq!(
        when_errors(json!({"intent": {"min_confidence": 0.5}})),
        [r#"rules[0] "r": when.intent.one_of: is required"#]
    );
}

#[test]
fn sentiment() {
    assert_eq!(
        when_errors(json!({"sentiment": {}})),
        [r#"rules[0] "r": when.sentiment: give "below", "above" or both"#]
    );
    assert_eq!(
        when_errors(json!({"sentiment": {"above": 0.5, "below": 0.2}})),
        [r#"rules[0] "r": when.sentiment: "above" (0.5) must be less than "below" (0.2)"#]
    );
    assert_eq!(
        when_errors(json!({"sentiment": {"above": -1.01}})),
        [r#"rules[0] "r": when.sentiment.above: must be between -1 and 1"#]
    );
    assert_eq!(
        when_errors(json!({"sentiment_label": ["negative", "negative"]})),
        [r#"rules[0] "r": when.sentiment_label[1]: "negative" appears twice"#]
    );
    assert_eq!(
        when_errors(json!({"sentiment_label": []})),
        [r#"rules[0] "r": when.sentiment_label: must not be empty"#]
    );
}

#[test]
fn lists_and_channels() {
    assert_eq!(
        when_errors(json!({"language": []})),
        [r#"rules[0] "r": when.language: must not be empty"#]
    );
    assert_eq!(
        when_errors(json!({"channel": ["web", "Web-Chat", "web"]})),
        [
            r#"rules[0] "r": when.channel[1]: must be 1 to 64 characters of a-z, 0-9 and '_'"#,
            r#"rules[0] "r": when.channel[2]: "web" appears twice"#,
        ]
    );
    let many = (0..101).map(|i| format!("c{i}")).collect::<Vec<_>>();
    let e = when_errors(json!({"channel": many}));
    assert_eq!(e, [r#"rules[0] "r": when.channel: at most 100 entries"#]);
}

#[test]
fn contact_attributes() {
    assert_eq!(
        when_errors(json!({"contact_attributes": {}})),
        [r#"rules[0] "r": when.contact_attributes: must not be empty"#]
    );
    assert_eq!(
        when_errors(json!({"contact_attributes": {"vip tier": {"one_of": []}, "": {"present": true}}})),
        [
            r#"rules[0] "r": when.contact_attributes[""]: attribute names must be 1 to 128 characters without control characters"#,
            r#"rules[0] "r": when.contact_attributes["vip tier"].one_of: must not be empty"#,
        ]
    );
    assert_eq!(
        when_errors(json!({"contact_attributes": {"tier": {"one_of": ["a", "x".repeat(1025)]}}})),
        [r#"rules[0] "r": when.contact_attributes.tier.one_of[1]: at most 1024 characters"#]
    );
}

#[test]
fn keywords() {
    assert_eq!(
        when_errors(json!({"keywords": []})),
        [r#"rules[0] "r": when.keywords: must not be empty"#]
    );
    assert_eq!(
        when_errors(json!({"keywords": ["退款", "  ", "", "a\u{0007}b", "Refund", "REFUND", "x".repeat(101)]})),
        [
            r#"rules[0] "r": when.keywords[1]: must be 1 to 100 characters, not only spaces, without control characters"#,
            r#"rules[0] "r": when.keywords[2]: must be 1 to 100 characters, not only spaces, without control characters"#,
            r#"rules[0] "r": when.keywords[3]: must be 1 to 100 characters, not only spaces, without control characters"#,
            r#"rules[0] "r": when.keywords[5]: "REFUND" repeats when.keywords[4] (keywords ignore case)"#,
            r#"rules[0] "r": when.keywords[6]: must be 1 to 100 characters, not only spaces, without control characters"#,
        ]
    );
    let many = (0..201).map(|i| format!("k{i}")).collect::<Vec<_>>();
    assert_eq!(
        when_errors(json!({"keywords": many})),
        [r#"rules[0] "r": when.keywords: at most 200 entries"#]
    );
}

#[test]
fn business_hours() {
    let hours = |offset: i64, mon: Value| {
        when_errors(json!({"business_hours": {"utc_offset_minutes": offset, "schedule": {"mon": mon}}}))
    };
    assert_eq!(
        hours(900, json!(["09:00-18:00"])),
        [r#"rules[0] "r": when.business_hours.utc_offset_minutes: must be between -720 and 840"#]
    );
    assert_eq!(
        hours(-721, json!(["09:00-18:00"])),
        [r#"rules[0] "r": when.business_hours.utc_offset_minutes: must be between -720 and 840"#]
    );
    assert_eq!(
        hours(
            0,
            json!([
                "9:00-18:00",
                "09:00-18:60",
                "10:00-10:00",
                "24:00-02:00",
                "09:00 - 18:00"
            ])
        ),
        [
            r#"rules[0] "r": when.business_hours.schedule.mon[0]: "9:00-18:00" is not a time range like "09:00-18:00""#,
            r#"rules[0] "r": when.business_hours.schedule.mon[1]: "09:00-18:60" is not a time range like "09:00-18:00""#,
            r#"rules[0] "r": when.business_hours.schedule.mon[2]: "10:00-10:00" is empty; use "00:00-24:00" for the whole day"#,
            r#"rules[0] "r": when.business_hours.schedule.mon[3]: "24:00-02:00" starts at 24:00; start at 00:00 of the next day instead"#,
            r#"rules[0] "r": when.business_hours.schedule.mon[4]: "09:00 - 18:00" is not a time range like "09:00-18:00""#,
        ]
    );
    assert_eq!(
        hours(0, json!([])),
        [r#"rules[0] "r": when.business_hours.schedule: must have at least one range"#]
    );
    let many = (0..17).map(|h| format!("{h:02}:00-{h:02}:30")).collect::<Vec<_>>();
    assert_eq!(
        hours(0, json!(many)),
        [r#"rules[0] "r": when.business_hours.schedule.mon: at most 16 ranges a day"#]
    );
    // Overnight, whole-day and overlapping ranges are fine.
    let ok = json!({"version": 1, "rules": [
        {"name": "r", "when": {"business_hours": {"utc_offset_minutes": 345, "schedule": {
            "mon": ["22:00-02:00", "00:00-24:00", "08:00-12:00", "11:00-13:00"], "sun": ["23:00-00:00"]
        }}}, "then": {"route": "bot"}},
        {"name": "default", "then": {"route": "bot"}}
    ]});
    assert!(RuleSet::parse(&ok.to_string()).is_ok());
}

#[test]
fn waiting_and_counts() {
    assert_eq!(
        when_errors(json!({"waiting_seconds": {}})),
        [r#"rules[0] "r": when.waiting_seconds: give "at_least", "below" or both"#]
    );
    assert_eq!(
        when_errors(json!({"waiting_seconds": {"at_least": 600, "below": 600}})),
        [r#"rules[0] "r": when.waiting_seconds: "at_least" (600) must be less than "below" (600)"#]
    );
    assert_eq!(
        when_errors(json!({"repeated_low_confidence": {"at_least": 0}})),
        [r#"rules[0] "r": when.repeated_low_confidence.at_least: must be at least 1"#]
    );
}

#[test]
fn limits() {
    let default = json!({"name": "d", "then": {"route": "bot"}});
    let json = json!({"version": 1, "rules": vec![default; MAX_RULES + 1]}).to_string();
    let e = errors_of(&json);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        format!("rules: {} rules; at most {MAX_RULES} are allowed", MAX_RULES + 1)
    );
    assert_eq!(e[0].kind, RuleErrorKind::TooLarge);

    let padding = " ".repeat(MAX_JSON_BYTES);
    let e = errors_of(&format!(
        r#"{{"version": 1, "rules": [{{"name": "d", "then": {{"route": "bot"}}}}]}}{padding}"#
    ));
    assert_eq!(e[0].kind, RuleErrorKind::TooLarge);
    assert!(e[0].to_string().starts_with("the rule set is "), "{}", e[0]);
}
