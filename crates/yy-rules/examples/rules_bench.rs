//! Decisions per second on one core for a 10-rule set.
//!
//! `cargo run --release -p yy-rules --example rules_bench [seconds per case]`
//!
//! Three cases: a message every rule skips (the default decides, with nine explanations: the
//! most work a decision does), a realistic mix, and a message the first rule takes.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use yy_rules::{Facts, IntentScore, Language, RuleSet, SentimentLabel};

const RULES: &str = r#"{
  "version": 1,
  "rules": [
    {"name": "vip-angry", "when": {"contact_attributes": {"tier": {"one_of": ["vip", "gold"]}}, "sentiment": {"below": -0.5}},
     "then": {"route": "queue", "queue": "vip", "priority": 9, "escalate": true, "add_tags": ["angry-vip"]}},
    {"name": "handoff", "when": {"handoff_requested": true}, "then": {"route": "queue", "queue": "general"}},
    {"name": "complaint-words", "when": {"keywords": ["投诉", "complaint", "律师", "lawyer", "消协", "曝光"]},
     "then": {"route": "queue", "queue": "complaints", "priority": 8}},
    {"name": "refund-in-hours", "when": {"intent": {"one_of": ["refund"], "min_confidence": 0.6},
      "business_hours": {"utc_offset_minutes": 480, "schedule": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"],
        "wed": ["09:00-18:00"], "thu": ["09:00-18:00"], "fri": ["09:00-18:00"], "sat": ["10:00-16:00"]}}},
     "then": {"route": "queue", "queue": "refunds", "priority": 6, "skills": [{"name": "refund", "min_level": 2}]}},
    {"name": "refund-after-hours", "when": {"intent": {"one_of": ["refund"], "min_confidence": 0.6},
      "business_hours": {"utc_offset_minutes": 480, "schedule": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"],
        "wed": ["09:00-18:00"], "thu": ["09:00-18:00"], "fri": ["09:00-18:00"], "sat": ["10:00-16:00"]}, "inside": false}},
     "then": {"route": "bot", "add_tags": ["refund-after-hours"]}},
    {"name": "english-email", "when": {"channel": ["email"], "language": ["en"]},
     "then": {"route": "queue", "queue": "general", "languages": ["en"]}},
    {"name": "long-wait", "when": {"waiting_seconds": {"at_least": 600}, "sentiment_label": ["negative"]},
     "then": {"route": "queue", "queue": "general", "priority": 8, "escalate": true}},
    {"name": "unclear", "when": {"ambiguous": true, "fallback": false}, "then": {"route": "bot", "add_tags": ["clarify"]}},
    {"name": "low-confidence", "when": {"repeated_low_confidence": {"at_least": 2}}, "then": {"route": "queue", "queue": "general"}},
    {"name": "default", "then": {"route": "bot"}}
  ]
}"#;

/// 2025-01-31, a Friday, 09:30 UTC.
const NOW: i64 = 1_738_315_800;

fn skipped_by_all() -> Facts {
    Facts {
        intents: vec![
            IntentScore {
                name: "greeting".to_owned(),
                confidence: 0.9,
            },
            IntentScore {
                name: "refund".to_owned(),
                confidence: 0.05,
            },
        ],
        sentiment: Some(-0.2),
        sentiment_label: Some(SentimentLabel::Neutral),
        language: Some(Language::Zh),
        channel: "wechat".to_owned(),
        contact_attributes: BTreeMap::from([("tier".to_owned(), "silver".to_owned())]),
        text: "你好，我想问一下我的订单什么时候发货？订单号是 2025013112345，谢谢。".to_owned(),
        now: NOW,
        waiting_seconds: Some(30),
        consecutive_low_confidence: 1,
        ..Facts::default()
    }
}

fn mix() -> Vec<Facts> {
    let base = skipped_by_all();
    let refund = Facts {
        intents: vec![IntentScore {
            name: "refund".to_owned(),
            confidence: 0.92,
        }],
        ..base.clone()
    };
    vec![
        base.clone(),
        Facts {
            sentiment: Some(-0.8),
            contact_attributes: BTreeMap::from([("tier".to_owned(), "vip".to_owned())]),
            ..base.clone()
        },
        Facts {
            handoff_requested: true,
            ..base.clone()
        },
        Facts {
            text: "我要投诉你们".to_owned(),
            ..base.clone()
        },
        refund.clone(),
        Facts {
            now: NOW + 3 * 3600,
            ..refund
        },
        Facts {
            channel: "email".to_owned(),
            language: Some(Language::En),
            text: "Where is my order?".to_owned(),
            ..base.clone()
        },
        Facts {
            waiting_seconds: Some(900),
            sentiment_label: Some(SentimentLabel::Negative),
            ..base.clone()
        },
        Facts {
            ambiguous: true,
            ..base.clone()
        },
        Facts {
            consecutive_low_confidence: 3,
            fallback: true,
            ..base
        },
    ]
}

fn measure(rules: &RuleSet, facts: &[Facts], budget: Duration) -> f64 {
    // Warm up caches and the allocator before timing.
    for f in facts.iter().cycle().take(10_000) {
        black_box(rules.decide(black_box(f)));
    }
    let start = Instant::now();
    let mut decisions = 0u64;
    while start.elapsed() < budget {
        for f in facts.iter().cycle().take(10_000) {
            black_box(rules.decide(black_box(f)));
        }
        decisions += 10_000;
    }
    decisions as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds.max(0.1));
    let rules = match RuleSet::parse(RULES) {
        Ok(rules) => rules,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    assert_eq!(rules.len(), 10);
    let worst = [skipped_by_all()];
    assert_eq!(
        rules.decide(&worst[0]).rule_index,
        9,
        "the worst case must fall through to the default"
    );
    let first = [Facts {
        sentiment: Some(-0.8),
        contact_attributes: BTreeMap::from([("tier".to_owned(), "vip".to_owned())]),
        ..skipped_by_all()
    }];
    assert_eq!(rules.decide(&first[0]).rule_index, 0);
    let mix = mix();

    println!("yy-rules: {} rules, one core, {seconds} s per case", rules.len());
    for (case, facts) in [
        ("all rules skipped", &worst[..]),
        ("realistic mix", &mix[..]),
        ("first rule matches", &first[..]),
    ] {
        let rate = measure(&rules, facts, budget);
        println!("{case:>20}: {:>12.0} decisions/s ({:.2} µs each)", rate, 1e6 / rate);
    }
}
