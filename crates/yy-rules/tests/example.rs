//! The documented example rule set, `examples/rules.json`, and what it decides.

use std::collections::BTreeMap;

use yy_rules::{Facts, IntentScore, Mismatch, Route, RuleErrorKind, RuleSet, SkillRequirement};

const EXAMPLE: &str = include_str!("../examples/rules.json");
const QUEUES: [&str; 3] = ["vip", "general", "refunds"];

/// 2025-01-31, a Friday, 09:30:00 UTC: 17:30 in China.
const FRI_0930_UTC: i64 = 1_738_315_800;
const HOUR: i64 = 3600;

fn example() -> RuleSet {
    match RuleSet::parse_with_queues(EXAMPLE, &QUEUES) {
        Ok(rules) => rules,
        Err(errors) => panic!(
            "{}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        ),
    }
}

fn queue_of(facts: &Facts) -> (String, Option<String>) {
    let decision = example().decide(facts);
    let queue = match &decision.action.route {
        Route::Queue(target) => Some(target.queue.clone()),
        Route::Bot => None,
    };
    (decision.rule_name.to_string(), queue)
}

fn refund(confidence: f32, now: i64) -> Facts {
    Facts {
        intents: vec![IntentScore {
            name: "refund".to_owned(),
            confidence,
        }],
        now,
        ..Facts::default()
    }
}

#[test]
fn the_example_is_valid() {
    let rules = example();
    assert_eq!(rules.version(), 1);
    assert_eq!(
        rules.rule_names().collect::<Vec<_>>(),
        [
            "vip-angry",
            "handoff",
            "refund-in-hours",
            "refund-after-hours",
            "low-confidence",
            "default"
        ]
    );
    assert_eq!(rules.queues(), ["general", "refunds", "vip"]);

    let errors = RuleSet::parse_with_queues(EXAMPLE, &["vip", "general"])
        .err()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind, RuleErrorKind::UnknownQueue);
    assert_eq!(
        errors[0].to_string(),
        r#"rules[2] "refund-in-hours": then.queue: unknown queue "refunds""#
    );
}

#[test]
fn angry_vips_go_to_the_vip_queue_escalated() {
    let facts = Facts {
        contact_attributes: BTreeMap::from([("tier".to_owned(), "gold".to_owned())]),
        sentiment: Some(-0.8),
        handoff_requested: true,
        ..Facts::default()
    };
    let decision = example().decide(&facts);
    assert_eq!(&*decision.rule_name, "vip-angry");
    let Route::Queue(target) = &decision.action.route else {
        panic!("expected a queue, got {:?}", decision.action);
    };
    assert_eq!((target.queue.as_str(), target.priority), ("vip", 9));
    assert!(decision.action.escalate);
    assert_eq!(decision.action.add_tags, ["angry-vip"]);

    // A calm VIP asking for a human is a plain handoff.
    let calm = Facts {
        sentiment: Some(0.1),
        ..facts
    };
    assert_eq!(queue_of(&calm), ("handoff".to_owned(), Some("general".to_owned())));
}

#[test]
fn refunds_depend_on_opening_hours() {
    let rules = example();
    // Friday 17:30 in China: open.
    let decision = rules.decide(&refund(0.9, FRI_0930_UTC));
    assert_eq!(&*decision.rule_name, "refund-in-hours");
    let Route::Queue(target) = &decision.action.route else {
        panic!("expected a queue, got {:?}", decision.action);
    };
    assert_eq!(target.queue, "refunds");
    assert_eq!(
        target.skills,
        [SkillRequirement {
            name: "refund".to_owned(),
            min_level: 2
        }]
    );

    // Friday 18:30 in China: closed, the bot takes it and tags it.
    let decision = rules.decide(&refund(0.9, FRI_0930_UTC + HOUR));
    assert_eq!(&*decision.rule_name, "refund-after-hours");
    assert_eq!(decision.action.route, Route::Bot);
    assert_eq!(decision.action.add_tags, ["refund-after-hours"]);
    assert!(matches!(
        decision.skipped[2].failed,
        Mismatch::BusinessHours { inside: true, .. }
    ));

    // Saturday 12:00 in China: open; Sunday 12:00: closed.
    assert_eq!(
        queue_of(&refund(0.9, FRI_0930_UTC + 18 * HOUR + 30 * 60)).0,
        "refund-in-hours"
    );
    assert_eq!(
        queue_of(&refund(0.9, FRI_0930_UTC + 42 * HOUR + 30 * 60)).0,
        "refund-after-hours"
    );

    // Not sure enough that it is a refund: neither refund rule.
    assert_eq!(queue_of(&refund(0.5, FRI_0930_UTC)), ("default".to_owned(), None));
}

#[test]
fn repeated_low_confidence_goes_to_a_human() {
    let twice = Facts {
        consecutive_low_confidence: 2,
        fallback: true,
        ..Facts::default()
    };
    assert_eq!(
        queue_of(&twice),
        ("low-confidence".to_owned(), Some("general".to_owned()))
    );
    let once = Facts {
        consecutive_low_confidence: 1,
        ..twice
    };
    assert_eq!(queue_of(&once), ("default".to_owned(), None));
}

#[test]
fn everything_else_stays_with_the_bot_and_is_explained() {
    let decision = example().decide(&Facts::default());
    assert_eq!((decision.rule_index, &*decision.rule_name), (5, "default"));
    assert_eq!(decision.action.route, Route::Bot);
    let reasons = decision
        .skipped
        .iter()
        .map(|s| {
            serde_json::to_value(&s.failed)
                .map(|v| v["condition"].clone())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        reasons,
        [
            "sentiment",
            "handoff_requested",
            "intent",
            "intent",
            "repeated_low_confidence"
        ]
    );
}

#[test]
fn the_example_round_trips() {
    let rules = example();
    let json = serde_json::to_string_pretty(&rules).expect("serialises");
    let again = RuleSet::parse_with_queues(&json, &QUEUES).expect("its own output parses");
    assert_eq!(again, rules);
    let original: serde_json::Value = serde_json::from_str(EXAMPLE).expect("JSON");
    let written: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(written, original, "the example is already in normal form");
}
