//! Every condition and action, evaluated through the public API, with the explanations they give.

use std::collections::BTreeMap;

use serde_json::json;
use yy_rules::{
    Action, AttributeTest, Decision, Facts, IntentScore, Language, LocalTime, Mismatch, QueueTarget, Route, RuleSet,
    SentimentLabel, SkillRequirement, Weekday,
};

/// 2025-01-31, a Friday, 09:30:00 UTC.
const FRI_0930_UTC: i64 = 1_738_315_800;
const HOUR: i64 = 3600;

/// A set with one rule "r" (conditions `when`, routing to queue "q") before the bot default.
fn one_rule(when: serde_json::Value) -> RuleSet {
    let json = json!({
        "version": 7,
        "rules": [
            {"name": "r", "when": when, "then": {"route": "queue", "queue": "q"}},
            {"name": "default", "then": {"route": "bot"}}
        ]
    });
    match RuleSet::parse(&json.to_string()) {
        Ok(rules) => rules,
        Err(errors) => panic!(
            "{}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        ),
    }
}

/// The mismatch when rule "r" did not match, `None` when it did.
fn check(rules: &RuleSet, facts: &Facts) -> Option<Mismatch> {
    let decision = rules.decide(facts);
    assert_consistent(&decision);
    if decision.rule_index == 0 {
        assert_eq!(&*decision.rule_name, "r");
        assert!(decision.skipped.is_empty());
        None
    } else {
        assert_eq!(&*decision.rule_name, "default");
        assert_eq!(decision.skipped.len(), 1);
        Some(decision.skipped[0].failed.clone())
    }
}

fn assert_consistent(decision: &Decision) {
    assert_eq!(decision.skipped.len(), decision.rule_index);
    for (i, skipped) in decision.skipped.iter().enumerate() {
        assert_eq!(skipped.index, i);
    }
    let json = serde_json::to_string(decision).expect("a decision serialises");
    let back: Decision = serde_json::from_str(&json).expect("a decision deserialises");
    assert_eq!(&back, decision, "{json}");
}

fn intent(name: &str, confidence: f32) -> IntentScore {
    IntentScore {
        name: name.to_owned(),
        confidence,
    }
}

fn text(text: &str) -> Facts {
    Facts {
        text: text.to_owned(),
        ..Facts::default()
    }
}

#[test]
fn handoff_fallback_and_ambiguous_flags() {
    let rules = one_rule(json!({"handoff_requested": true}));
    assert_eq!(
        check(
            &rules,
            &Facts {
                handoff_requested: true,
                ..Facts::default()
            }
        ),
        None
    );
    assert_eq!(
        check(&rules, &Facts::default()),
        Some(Mismatch::HandoffRequested {
            expected: true,
            actual: false
        })
    );

    let rules = one_rule(json!({"fallback": true}));
    assert_eq!(
        check(
            &rules,
            &Facts {
                fallback: true,
                ..Facts::default()
            }
        ),
        None
    );
    assert_eq!(
        check(&rules, &Facts::default()),
        Some(Mismatch::Fallback {
            expected: true,
            actual: false
        })
    );

    let rules = one_rule(json!({"ambiguous": false}));
    assert_eq!(check(&rules, &Facts::default()), None);
    assert_eq!(
        check(
            &rules,
            &Facts {
                ambiguous: true,
                ..Facts::default()
            }
        ),
        Some(Mismatch::Ambiguous {
            expected: false,
            actual: true
        })
    );
}

#[test]
fn repeated_low_confidence() {
    let rules = one_rule(json!({"repeated_low_confidence": {"at_least": 2}}));
    let facts = |n| Facts {
        consecutive_low_confidence: n,
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(2)), None);
    assert_eq!(check(&rules, &facts(9)), None);
    assert_eq!(
        check(&rules, &facts(1)),
        Some(Mismatch::RepeatedLowConfidence { at_least: 2, actual: 1 })
    );
}

#[test]
fn language() {
    let rules = one_rule(json!({"language": ["zh", "mixed"]}));
    let facts = |l| Facts {
        language: l,
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(Some(Language::Zh))), None);
    assert_eq!(check(&rules, &facts(Some(Language::Mixed))), None);
    assert_eq!(
        check(&rules, &facts(Some(Language::En))),
        Some(Mismatch::Language {
            expected: vec![Language::Zh, Language::Mixed].into(),
            actual: Some(Language::En)
        })
    );
    assert!(matches!(
        check(&rules, &facts(None)),
        Some(Mismatch::Language { actual: None, .. })
    ));
}

#[test]
fn channel() {
    let rules = one_rule(json!({"channel": ["web", "wechat"]}));
    let facts = |c: &str| Facts {
        channel: c.to_owned(),
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts("wechat")), None);
    assert_eq!(
        check(&rules, &facts("email")),
        Some(Mismatch::Channel {
            expected: vec!["web".to_owned(), "wechat".to_owned()].into(),
            actual: "email".to_owned()
        })
    );
    // Names compare exactly.
    assert!(check(&rules, &facts("Web")).is_some());
}

#[test]
fn sentiment_label() {
    let rules = one_rule(json!({"sentiment_label": ["negative"]}));
    let facts = |l| Facts {
        sentiment_label: l,
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(Some(SentimentLabel::Negative))), None);
    assert_eq!(
        check(&rules, &facts(Some(SentimentLabel::Positive))),
        Some(Mismatch::SentimentLabel {
            expected: vec![SentimentLabel::Negative].into(),
            actual: Some(SentimentLabel::Positive)
        })
    );
    assert!(check(&rules, &facts(None)).is_some());
}

#[test]
fn sentiment_bounds_are_strict_and_unknown_fails() {
    let below = one_rule(json!({"sentiment": {"below": -0.5}}));
    let facts = |s| Facts {
        sentiment: s,
        ..Facts::default()
    };
    assert_eq!(check(&below, &facts(Some(-0.8))), None);
    assert_eq!(
        check(&below, &facts(Some(-0.5))),
        Some(Mismatch::Sentiment {
            above: None,
            below: Some(-0.5),
            actual: Some(-0.5)
        })
    );
    assert_eq!(
        check(&below, &facts(None)),
        Some(Mismatch::Sentiment {
            above: None,
            below: Some(-0.5),
            actual: None
        })
    );
    // Not a number counts as unknown, and is recorded as unknown.
    assert_eq!(
        check(&below, &facts(Some(f32::NAN))),
        Some(Mismatch::Sentiment {
            above: None,
            below: Some(-0.5),
            actual: None
        })
    );
    assert!(check(&below, &facts(Some(f32::NEG_INFINITY))).is_some());

    let band = one_rule(json!({"sentiment": {"above": -0.2, "below": 0.2}}));
    assert_eq!(check(&band, &facts(Some(0.0))), None);
    assert!(check(&band, &facts(Some(0.2))).is_some());
    assert!(check(&band, &facts(Some(-0.2))).is_some());
    assert!(check(&band, &facts(Some(0.9))).is_some());
}

#[test]
fn intent_uses_the_top_intent_and_its_confidence() {
    let rules = one_rule(json!({"intent": {"one_of": ["refund", "return"], "min_confidence": 0.6}}));
    let facts = |intents: Vec<IntentScore>| Facts {
        intents,
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(vec![intent("refund", 0.6)])), None);
    assert_eq!(
        check(&rules, &facts(vec![intent("greeting", 0.1), intent("return", 0.9)])),
        None
    );
    assert_eq!(
        check(&rules, &facts(vec![intent("refund", 0.59)])),
        Some(Mismatch::Intent {
            expected: vec!["refund".to_owned(), "return".to_owned()].into(),
            min_confidence: 0.6,
            actual: Some(intent("refund", 0.59))
        })
    );
    // Only the top intent counts, whatever the order given.
    assert_eq!(
        check(&rules, &facts(vec![intent("refund", 0.7), intent("billing", 0.8)])),
        Some(Mismatch::Intent {
            expected: vec!["refund".to_owned(), "return".to_owned()].into(),
            min_confidence: 0.6,
            actual: Some(intent("billing", 0.8))
        })
    );
    assert!(matches!(
        check(&rules, &facts(vec![])),
        Some(Mismatch::Intent { actual: None, .. })
    ));
    assert!(matches!(
        check(&rules, &facts(vec![intent("refund", f32::NAN)])),
        Some(Mismatch::Intent { actual: None, .. })
    ));

    let any_confidence = one_rule(json!({"intent": {"one_of": ["退款"]}}));
    assert_eq!(check(&any_confidence, &facts(vec![intent("退款", 0.0)])), None);
}

#[test]
fn waiting_seconds() {
    let rules = one_rule(json!({"waiting_seconds": {"at_least": 120, "below": 600}}));
    let facts = |w| Facts {
        waiting_seconds: w,
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(Some(120))), None);
    assert_eq!(check(&rules, &facts(Some(599))), None);
    assert_eq!(
        check(&rules, &facts(Some(600))),
        Some(Mismatch::WaitingSeconds {
            at_least: Some(120),
            below: Some(600),
            actual: Some(600)
        })
    );
    assert!(check(&rules, &facts(Some(119))).is_some());
    // Not waiting is not "waiting 0 seconds".
    let short = one_rule(json!({"waiting_seconds": {"below": 60}}));
    assert_eq!(
        check(&short, &facts(None)),
        Some(Mismatch::WaitingSeconds {
            at_least: None,
            below: Some(60),
            actual: None
        })
    );
    assert_eq!(check(&short, &facts(Some(0))), None);
}

#[test]
fn contact_attributes() {
    let rules = one_rule(json!({"contact_attributes": {
        "tier": {"one_of": ["vip", "gold"]},
        "blocked": {"present": false}
    }}));
    let facts = |pairs: &[(&str, &str)]| Facts {
        contact_attributes: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts(&[("tier", "gold")])), None);
    assert_eq!(
        check(&rules, &facts(&[("tier", "gold"), ("blocked", "yes")])),
        Some(Mismatch::ContactAttribute {
            key: "blocked".into(),
            expected: AttributeTest::Present(false),
            actual: Some("yes".to_owned())
        })
    );
    assert_eq!(
        check(&rules, &facts(&[("tier", "silver")])),
        Some(Mismatch::ContactAttribute {
            key: "tier".into(),
            expected: AttributeTest::OneOf(vec!["vip".to_owned(), "gold".to_owned()].into()),
            actual: Some("silver".to_owned())
        })
    );
    assert!(matches!(
        check(&rules, &facts(&[])),
        Some(Mismatch::ContactAttribute { actual: None, .. })
    ));
    // Values compare exactly.
    assert!(check(&rules, &facts(&[("tier", "VIP")])).is_some());

    let present = one_rule(json!({"contact_attributes": {"order_id": {"present": true}}}));
    assert_eq!(check(&present, &facts(&[("order_id", "")])), None);
    assert!(check(&present, &facts(&[])).is_some());
}

#[test]
fn keywords_ignore_case_and_work_in_chinese() {
    let rules = one_rule(json!({"keywords": ["退款", "Refund", "straße"]}));
    assert_eq!(check(&rules, &text("我要退款，谢谢")), None);
    assert_eq!(check(&rules, &text("I want a REFUND")), None);
    assert_eq!(check(&rules, &text("请帮我 refund 一下")), None);
    assert_eq!(check(&rules, &text("STRAẞE")), None);
    assert_eq!(
        check(&rules, &text("退货")),
        Some(Mismatch::Keywords {
            expected: vec!["退款".to_owned(), "Refund".to_owned(), "straße".to_owned()].into()
        })
    );
    assert!(check(&rules, &text("")).is_some());
}

#[test]
fn the_explanation_never_holds_the_message_text() {
    let rules = one_rule(json!({"keywords": ["refund"]}));
    let decision = rules.decide(&text("my secret order 12345"));
    let json = serde_json::to_string(&decision).expect("serialises");
    assert!(!json.contains("secret"), "{json}");
}

#[test]
fn long_actual_values_are_cut() {
    let rules = one_rule(json!({"channel": ["web"]}));
    let long = "x".repeat(10_000);
    let mismatch = check(
        &rules,
        &Facts {
            channel: long,
            ..Facts::default()
        },
    );
    let Some(Mismatch::Channel { actual, .. }) = mismatch else {
        panic!("expected a channel mismatch, got {mismatch:?}");
    };
    assert_eq!(actual.chars().count(), 129, "128 characters and an ellipsis");
}

/// Monday to Friday 09:00–18:00 and Friday night 22:00–02:00, in `offset` minutes east of UTC.
fn hours_rule(offset: i32, inside: bool) -> RuleSet {
    one_rule(json!({"business_hours": {
        "utc_offset_minutes": offset,
        "schedule": {
            "mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
            "thu": ["09:00-18:00"], "fri": ["09:00-18:00", "22:00-02:00"]
        },
        "inside": inside
    }}))
}

fn at(now: i64) -> Facts {
    Facts {
        now,
        ..Facts::default()
    }
}

#[test]
fn business_hours_in_utc() {
    let rules = hours_rule(0, true);
    assert_eq!(check(&rules, &at(FRI_0930_UTC)), None);
    // 09:00 is inside, 18:00 is not: start inclusive, end exclusive.
    assert_eq!(check(&rules, &at(FRI_0930_UTC - 30 * 60)), None);
    assert!(check(&rules, &at(FRI_0930_UTC - 30 * 60 - 1)).is_some());
    assert_eq!(check(&rules, &at(FRI_0930_UTC + 8 * HOUR + 30 * 60 - 1)), None);
    assert_eq!(
        check(&rules, &at(FRI_0930_UTC + 8 * HOUR + 30 * 60)),
        Some(Mismatch::BusinessHours {
            inside: true,
            local_time: LocalTime {
                weekday: Weekday::Fri,
                minute_of_day: 18 * 60
            }
        })
    );
}

#[test]
fn business_hours_around_midnight() {
    let rules = hours_rule(0, true);
    let fri_midnight = FRI_0930_UTC - 9 * HOUR - 30 * 60;
    // Thursday 23:59 is closed, Friday 00:00 too (Friday's day range starts at 09:00).
    assert!(check(&rules, &at(fri_midnight - 60)).is_some());
    assert!(check(&rules, &at(fri_midnight)).is_some());
    // Friday 22:00 to Saturday 02:00 is open, across midnight.
    let sat_midnight = fri_midnight + 24 * HOUR;
    assert!(check(&rules, &at(sat_midnight - 2 * HOUR - 1)).is_some());
    assert_eq!(check(&rules, &at(sat_midnight - 2 * HOUR)), None);
    assert_eq!(check(&rules, &at(sat_midnight - 1)), None);
    assert_eq!(check(&rules, &at(sat_midnight)), None);
    assert_eq!(check(&rules, &at(sat_midnight + 2 * HOUR - 1)), None);
    assert_eq!(
        check(&rules, &at(sat_midnight + 2 * HOUR)),
        Some(Mismatch::BusinessHours {
            inside: true,
            local_time: LocalTime {
                weekday: Weekday::Sat,
                minute_of_day: 120
            }
        })
    );
}

#[test]
fn sunday_night_runs_into_monday() {
    let rules = one_rule(json!({"business_hours": {
        "utc_offset_minutes": 0, "schedule": {"sun": ["23:00-01:00"]}
    }}));
    let mon_midnight = FRI_0930_UTC - 9 * HOUR - 30 * 60 + 3 * 24 * HOUR;
    assert!(check(&rules, &at(mon_midnight - HOUR - 1)).is_some());
    assert_eq!(check(&rules, &at(mon_midnight - HOUR)), None);
    assert_eq!(check(&rules, &at(mon_midnight + HOUR - 1)), None);
    assert!(check(&rules, &at(mon_midnight + HOUR)).is_some());
}

#[test]
fn business_hours_across_offsets() {
    // Friday 09:30 UTC is Friday 17:30 in China (+08:00): open.
    assert_eq!(check(&hours_rule(480, true), &at(FRI_0930_UTC)), None);
    // ... and Friday 18:30 in +09:00: closed, and the explanation shows the local time.
    assert_eq!(
        check(&hours_rule(540, true), &at(FRI_0930_UTC)),
        Some(Mismatch::BusinessHours {
            inside: true,
            local_time: LocalTime {
                weekday: Weekday::Fri,
                minute_of_day: 18 * 60 + 30
            }
        })
    );
    // Friday 09:30 UTC is Thursday 23:30 in -10:00: closed; in +14:00 it is Friday 23:30, inside
    // the Friday night range.
    assert!(check(&hours_rule(-600, true), &at(FRI_0930_UTC)).is_some());
    assert_eq!(check(&hours_rule(840, true), &at(FRI_0930_UTC)), None);
    // Nepal's +05:45: Friday 15:15.
    assert_eq!(check(&hours_rule(345, true), &at(FRI_0930_UTC)), None);
    // Times before the epoch work as well: 1969-12-31 was a Wednesday.
    assert!(check(&hours_rule(0, true), &at(-12 * HOUR)).is_none());
}

#[test]
fn outside_business_hours() {
    let rules = hours_rule(480, false);
    assert_eq!(
        check(&rules, &at(FRI_0930_UTC)),
        Some(Mismatch::BusinessHours {
            inside: false,
            local_time: LocalTime {
                weekday: Weekday::Fri,
                minute_of_day: 17 * 60 + 30
            }
        })
    );
    assert_eq!(check(&rules, &at(FRI_0930_UTC + HOUR)), None);
}

#[test]
fn all_conditions_must_hold() {
    let rules = one_rule(json!({
        "channel": ["web"],
        "language": ["zh"],
        "keywords": ["退款"]
    }));
    let mut facts = Facts {
        channel: "web".to_owned(),
        language: Some(Language::Zh),
        text: "退款".to_owned(),
        ..Facts::default()
    };
    assert_eq!(check(&rules, &facts), None);
    facts.language = Some(Language::En);
    assert!(matches!(check(&rules, &facts), Some(Mismatch::Language { .. })));
}

#[test]
fn the_first_failing_condition_in_evaluation_order_is_reported() {
    // Written keywords first, handoff last: handoff is checked first all the same.
    let rules = one_rule(json!({"keywords": ["refund"], "handoff_requested": true}));
    assert_eq!(
        check(&rules, &Facts::default()),
        Some(Mismatch::HandoffRequested {
            expected: true,
            actual: false
        })
    );
}

#[test]
fn first_match_wins_and_the_rest_is_explained() {
    let json = json!({
        "version": 4,
        "rules": [
            {"name": "a", "when": {"channel": ["email"]}, "then": {"route": "queue", "queue": "mail"}},
            {"name": "b", "when": {"language": ["zh"]}, "then": {"route": "queue", "queue": "zh"}},
            {"name": "c", "when": {"language": ["zh"], "channel": ["web"]}, "then": {"route": "queue", "queue": "never"}},
            {"name": "d", "then": {"route": "bot"}}
        ]
    });
    let rules = RuleSet::parse(&json.to_string()).expect("valid");
    assert_eq!(rules.version(), 4);
    assert_eq!(rules.len(), 4);
    assert_eq!(rules.rule_names().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert_eq!(rules.queues(), ["mail", "never", "zh"]);

    let facts = Facts {
        channel: "web".to_owned(),
        language: Some(Language::Zh),
        ..Facts::default()
    };
    let decision = rules.decide(&facts);
    assert_eq!(
        (decision.rule_index, &*decision.rule_name, decision.version),
        (1, "b", 4)
    );
    assert_eq!(decision.skipped.len(), 1);
    assert_eq!(&*decision.skipped[0].name, "a");
    assert_consistent(&decision);

    let decision = rules.decide(&Facts::default());
    assert_eq!((decision.rule_index, &*decision.rule_name), (3, "d"));
    assert_eq!(
        decision.skipped.iter().map(|s| &*s.name).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(decision.action.route, Route::Bot);
    assert_consistent(&decision);
}

#[test]
fn actions_bot_and_queue() {
    let json = json!({
        "version": 1,
        "rules": [
            {"name": "full", "when": {"channel": ["web"]}, "then": {
                "route": "queue", "queue": "vip", "priority": 10,
                "skills": [{"name": "refund", "min_level": 3}, {"name": "zh-writing"}],
                "languages": ["zh", "en"],
                "add_tags": ["vip", "退款"], "escalate": true
            }},
            {"name": "minimal", "when": {"channel": ["app"]}, "then": {"route": "queue", "queue": "general"}},
            {"name": "bot-tagged", "when": {"channel": ["sms"]}, "then": {"route": "bot", "add_tags": ["sms"], "escalate": true}},
            {"name": "default", "then": {"route": "bot"}}
        ]
    });
    let rules = RuleSet::parse(&json.to_string()).expect("valid");
    let on = |channel: &str| {
        rules.decide(&Facts {
            channel: channel.to_owned(),
            ..Facts::default()
        })
    };

    assert_eq!(
        *on("web").action,
        Action {
            route: Route::Queue(QueueTarget {
                queue: "vip".to_owned(),
                priority: 10,
                skills: vec![
                    SkillRequirement {
                        name: "refund".to_owned(),
                        min_level: 3
                    },
                    SkillRequirement {
                        name: "zh-writing".to_owned(),
                        min_level: 1
                    },
                ],
                languages: vec![Language::Zh, Language::En],
            }),
            add_tags: vec!["vip".to_owned(), "退款".to_owned()],
            escalate: true,
        }
    );
    assert_eq!(
        *on("app").action,
        Action {
            route: Route::Queue(QueueTarget {
                queue: "general".to_owned(),
                priority: 5,
                skills: vec![],
                languages: vec![],
            }),
            add_tags: vec![],
            escalate: false,
        }
    );
    assert_eq!(
        *on("sms").action,
        Action {
            route: Route::Bot,
            add_tags: vec!["sms".to_owned()],
            escalate: true
        }
    );
    assert_eq!(
        *on("email").action,
        Action {
            route: Route::Bot,
            add_tags: vec![],
            escalate: false
        }
    );
}

#[test]
fn actions_serialise_in_the_written_shape() {
    let action = Action {
        route: Route::Queue(QueueTarget {
            queue: "vip".to_owned(),
            priority: 9,
            skills: vec![SkillRequirement {
                name: "refund".to_owned(),
                min_level: 2,
            }],
            languages: vec![Language::Zh],
        }),
        add_tags: vec![],
        escalate: true,
    };
    let value = serde_json::to_value(&action).expect("serialises");
    assert_eq!(
        value,
        json!({"route": "queue", "queue": "vip", "priority": 9,
               "skills": [{"name": "refund", "min_level": 2}], "languages": ["zh"],
               "add_tags": [], "escalate": true})
    );
    assert_eq!(serde_json::from_value::<Action>(value).ok(), Some(action));
    let bot = json!({"route": "bot", "add_tags": ["x"], "escalate": false});
    assert_eq!(
        serde_json::from_value::<Action>(bot).ok(),
        Some(Action {
            route: Route::Bot,
            add_tags: vec!["x".to_owned()],
            escalate: false
        })
    );
}

#[test]
fn decision_json_shape() {
    let rules = one_rule(json!({"sentiment": {"below": -0.5}}));
    let decision = rules.decide(&Facts {
        sentiment: Some(-0.25),
        ..Facts::default()
    });
    assert_eq!(
        serde_json::to_value(&decision).expect("serialises"),
        json!({
            "version": 7,
            "rule_index": 1,
            "rule_name": "default",
            "action": {"route": "bot", "add_tags": [], "escalate": false},
            "skipped": [
                {"index": 0, "name": "r", "failed": {"condition": "sentiment", "above": null, "below": -0.5, "actual": -0.25}}
            ]
        })
    );
}

#[test]
fn rule_sets_round_trip_through_serde() {
    let rules = one_rule(json!({"keywords": ["退款"], "business_hours": {
        "utc_offset_minutes": 480, "schedule": {"mon": ["09:00-18:00"]}
    }}));
    let json = serde_json::to_string(&rules).expect("serialises");
    let back: RuleSet = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, rules);
    assert_eq!(back.spec(), rules.spec());
    assert!(serde_json::from_str::<RuleSet>(r#"{"version": 0, "rules": []}"#).is_err());

    fn is_shareable<T: Send + Sync>() {}
    is_shareable::<RuleSet>();
    is_shareable::<Decision>();
}
