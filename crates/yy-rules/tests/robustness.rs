//! Generated inputs: `decide` never panics and always gives a consistent, storable decision, and
//! `parse` never panics on mangled rule sets.
//!
//! A fixed-seed generator keeps every run identical, so a failure reproduces.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use yy_rules::{Decision, Facts, IntentScore, Language, RuleSet, SentimentLabel};

/// xorshift64*: small, fast, and good enough to spread inputs.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn float(&mut self) -> f32 {
        const SPECIAL: [f32; 9] = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::MIN,
            f32::MAX,
            f32::EPSILON,
            -1.0,
            1.0,
        ];
        if self.chance(15) {
            *self.pick(&SPECIAL)
        } else {
            (self.below(4001) as f32 - 2000.0) / 1000.0
        }
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 16] = [
            "退款", "refund", "REFUND", "我要", " ", "İ", "ẞ", "σ", "Σ", "e\u{301}", "\u{0}", "😀", "ok", "投诉", "a",
            "\n",
        ];
        (0..self.below(12)).map(|_| *self.pick(&PIECES)).collect()
    }

    fn facts(&mut self) -> Facts {
        const INTENTS: [&str; 5] = ["refund", "billing", "greeting", "退款", ""];
        const CHANNELS: [&str; 5] = ["web", "wechat", "email", "", "WEB"];
        const LANGUAGES: [Language; 3] = [Language::Zh, Language::En, Language::Mixed];
        const LABELS: [SentimentLabel; 3] = [
            SentimentLabel::Negative,
            SentimentLabel::Neutral,
            SentimentLabel::Positive,
        ];
        const NOW: [i64; 6] = [i64::MIN, i64::MAX, 0, -1, 1_738_315_800, 4_102_444_800];
        let intents = (0..self.below(5))
            .map(|_| IntentScore {
                name: (*self.pick(&INTENTS)).to_owned(),
                confidence: self.float(),
            })
            .collect();
        let mut contact_attributes = BTreeMap::new();
        for _ in 0..self.below(4) {
            let key = (*self.pick(&["tier", "blocked", "order_id", ""])).to_owned();
            let value = if self.chance(10) {
                "x".repeat(500)
            } else {
                (*self.pick(&["vip", "gold", "", "VIP"])).to_owned()
            };
            contact_attributes.insert(key, value);
        }
        Facts {
            intents,
            fallback: self.chance(30),
            ambiguous: self.chance(30),
            sentiment: self.chance(80).then(|| self.float()),
            sentiment_label: self.chance(70).then(|| *self.pick(&LABELS)),
            language: self.chance(70).then(|| *self.pick(&LANGUAGES)),
            channel: if self.chance(5) {
                self.text()
            } else {
                (*self.pick(&CHANNELS)).to_owned()
            },
            contact_attributes,
            text: self.text(),
            now: if self.chance(20) {
                *self.pick(&NOW)
            } else {
                self.next() as i64 % 5_000_000_000
            },
            waiting_seconds: self
                .chance(50)
                .then(|| if self.chance(10) { u64::MAX } else { self.next() % 2000 }),
            handoff_requested: self.chance(20),
            consecutive_low_confidence: if self.chance(5) { u32::MAX } else { self.below(4) as u32 },
        }
    }
}

/// A rule set that uses every condition, several in one rule.
fn every_condition() -> RuleSet {
    let json = json!({"version": 9, "rules": [
        {"name": "flags", "when": {"handoff_requested": true, "fallback": false, "ambiguous": false},
         "then": {"route": "queue", "queue": "general"}},
        {"name": "vip", "when": {"contact_attributes": {"tier": {"one_of": ["vip", "gold"]}, "blocked": {"present": false}},
                                 "sentiment": {"above": -1, "below": -0.3}},
         "then": {"route": "queue", "queue": "vip", "priority": 9, "escalate": true}},
        {"name": "intent", "when": {"intent": {"one_of": ["refund", "退款"], "min_confidence": 0.5}, "language": ["zh", "mixed"],
                                    "business_hours": {"utc_offset_minutes": 480, "schedule": {
                                        "mon": ["09:00-18:00"], "fri": ["22:00-02:00"], "sun": ["23:00-01:00"]}}},
         "then": {"route": "queue", "queue": "refunds", "skills": [{"name": "refund", "min_level": 2}], "languages": ["zh"]}},
        {"name": "words", "when": {"keywords": ["退款", "REFUND", "ß", "i\u{307}"], "channel": ["web", "wechat"]},
         "then": {"route": "bot", "add_tags": ["keyword"]}},
        {"name": "labels", "when": {"sentiment_label": ["negative"], "waiting_seconds": {"at_least": 60, "below": 600}},
         "then": {"route": "queue", "queue": "general", "priority": 7}},
        {"name": "closed", "when": {"business_hours": {"utc_offset_minutes": -720, "schedule": {"sat": ["00:00-24:00"]},
                                                       "inside": false}, "ambiguous": true},
         "then": {"route": "bot"}},
        {"name": "confused", "when": {"repeated_low_confidence": {"at_least": 2}}, "then": {"route": "queue", "queue": "general"}},
        {"name": "default", "then": {"route": "bot"}}
    ]});
    RuleSet::parse(&json.to_string()).expect("valid")
}

fn assert_storable(decision: &Decision, rules: &RuleSet) {
    assert!(decision.rule_index < rules.len());
    assert_eq!(decision.skipped.len(), decision.rule_index);
    assert!(decision.skipped.iter().enumerate().all(|(i, s)| s.index == i));
    assert_eq!(decision.version, rules.version());
    let json = serde_json::to_string(decision).expect("a decision serialises");
    let back: Decision = serde_json::from_str(&json).expect("a decision deserialises");
    assert_eq!(&back, decision, "{json}");
}

#[test]
fn decide_never_panics_and_always_explains() {
    let rules = every_condition();
    let mut generator = Gen(0x9E37_79B9_7F4A_7C15);
    let mut matched = vec![0usize; rules.len()];
    for _ in 0..20_000 {
        let facts = generator.facts();
        let decision = rules.decide(&facts);
        assert_storable(&decision, &rules);
        assert_eq!(decision, rules.decide(&facts), "deterministic");
        matched[decision.rule_index] += 1;
    }
    // The inputs reach every rule, so every condition was exercised both ways.
    assert!(matched.iter().all(|n| *n > 0), "{matched:?}");
}

fn mangle(value: &mut Value, generator: &mut Gen) {
    const REPLACEMENTS: [&str; 14] = [
        "null",
        "true",
        "0",
        "-1",
        "1e300",
        "0.5",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[1, 2]",
        "{\"a\": 1}",
        "\"09:00-18:00\"",
        "18446744073709551615",
    ];
    if generator.chance(4) {
        let replacement = *generator.pick(&REPLACEMENTS);
        *value = serde_json::from_str(replacement).unwrap_or(Value::Null);
        return;
    }
    match value {
        Value::Object(map) => {
            if generator.chance(3)
                && let Some(key) = map.keys().nth(generator.below(map.len())).cloned()
            {
                map.remove(&key);
            }
            if generator.chance(2) {
                map.insert("unexpected".to_owned(), Value::Null);
            }
            map.values_mut().for_each(|v| mangle(v, generator));
        }
        Value::Array(items) => {
            if generator.chance(3) && !items.is_empty() {
                let i = generator.below(items.len());
                let copy = items[i].clone();
                items.insert(i, copy);
            }
            items.iter_mut().for_each(|v| mangle(v, generator));
        }
        _ => {}
    }
}

#[test]
fn parse_never_panics_on_mangled_rule_sets() {
    let example: Value = serde_json::from_str(include_str!("../examples/rules.json")).expect("JSON");
    let every = serde_json::to_value(every_condition()).expect("serialises");
    let mut generator = Gen(0x0123_4567_89AB_CDEF);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..3_000 {
        let mut value = if round % 2 == 0 { example.clone() } else { every.clone() };
        mangle(&mut value, &mut generator);
        let text = value.to_string();
        match RuleSet::parse(&text) {
            Ok(rules) => {
                accepted += 1;
                for _ in 0..5 {
                    assert_storable(&rules.decide(&generator.facts()), &rules);
                }
            }
            Err(errors) => {
                refused += 1;
                assert!(!errors.is_empty());
                assert!(
                    errors
                        .iter()
                        .all(|e| !e.to_string().is_empty() && !e.message.is_empty())
                );
            }
        }
    }
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
}

#[test]
fn parse_never_panics_on_broken_text() {
    let example = include_str!("../examples/rules.json");
    let mut generator = Gen(0xDEAD_BEEF_CAFE_F00D);
    let chars = example.chars().collect::<Vec<_>>();
    for _ in 0..3_000 {
        let mut text = chars.clone();
        for _ in 0..=generator.below(3) {
            let at = generator.below(text.len());
            match generator.below(3) {
                0 => {
                    text.remove(at);
                }
                1 => text.insert(
                    at,
                    *generator.pick(&['{', '}', '[', ']', '"', ',', ':', '\\', '退', '\u{0}', '9']),
                ),
                _ => text.truncate(at),
            }
        }
        let text = text.into_iter().collect::<String>();
        if let Err(errors) = RuleSet::parse(&text) {
            assert!(!errors.is_empty());
        }
    }
}
