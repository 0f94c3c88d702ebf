//! Accuracy of the built-in model on the labelled evaluation set
//! (`tests/fixtures/nlu/labelled.jsonl` at the workspace root).
//!
//! Print the table: `cargo nextest run -p yy-nlu evaluation --no-capture`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;
use yy_nlu::{Analyzer, SentimentLabel, default_intents};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    text: String,
    intent: Option<String>,
    sentiment: SentimentLabel,
}

fn fixture() -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/nlu/labelled.jsonl");
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    data.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect()
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF)
}

/// Lowercase letters, digits and Chinese characters only, single-spaced: "Where's my order?!"
/// and "wheres my order" compare equal.
fn normalise(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if c.is_whitespace() && !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

fn bigrams(s: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = s.chars().collect();
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

#[test]
fn evaluation_set_is_well_formed() {
    let rows = fixture();
    let zh = rows.iter().filter(|r| r.text.chars().any(is_han)).count();
    let en = rows.len() - zh;
    assert!(rows.len() >= 240, "{} rows", rows.len());
    assert!(zh >= 120 && en >= 120, "{zh} Chinese, {en} English");
    let names: Vec<String> = default_intents().into_iter().map(|d| d.name).collect();
    let mut per_intent: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for r in &rows {
        if let Some(i) = &r.intent {
            assert!(names.contains(i), "unknown intent {i:?} in {:?}", r.text);
        }
        *per_intent.entry(r.intent.as_deref()).or_default() += 1;
    }
    let counts: Vec<usize> = names
        .iter()
        .map(|n| per_intent.get(&Some(n.as_str())).copied().unwrap_or(0))
        .collect();
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    assert!(min >= 20 && max - min <= 4, "uneven coverage: {per_intent:?}");
    assert!(
        per_intent.get(&None).copied().unwrap_or(0) >= 12,
        "too few out-of-scope messages"
    );
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(seen.insert(normalise(&r.text)), "duplicate: {:?}", r.text);
    }
}

/// The evaluation set must measure generalisation: no message may equal or be contained in a
/// training example, and none may be a near copy of one (character-bigram Jaccard similarity of
/// 0.7 or more).
#[test]
fn evaluation_set_is_disjoint_from_training() {
    let training: Vec<String> = default_intents()
        .iter()
        .flat_map(|d| d.examples.iter().map(|e| normalise(e)))
        .collect();
    let training_grams: Vec<HashSet<(char, char)>> = training.iter().map(|t| bigrams(t)).collect();
    for r in fixture() {
        let text = normalise(&r.text);
        for (t, grams) in training.iter().zip(&training_grams) {
            assert!(
                !t.contains(&text),
                "evaluation text {:?} is contained in training example {t:?}",
                r.text
            );
            let mine = bigrams(&text);
            let union = mine.union(grams).count();
            if union > 0 {
                let jaccard = mine.intersection(grams).count() as f64 / union as f64;
                assert!(
                    jaccard < 0.7,
                    "evaluation text {:?} nearly copies training example {t:?} ({jaccard:.2})",
                    r.text
                );
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    true_positive: usize,
    predicted: usize,
    actual: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The targets set for the built-in model.
const INTENT_TARGET: f64 = 0.90;
const SENTIMENT_TARGET: f64 = 0.85;
/// What the built-in model measured when it was last changed (see docs/nlu.md), minus a few
/// messages of slack: a change that scores lower than this made things worse.
const INTENT_FLOOR: f64 = 0.86;
const SENTIMENT_FLOOR: f64 = 0.90;

struct Scores {
    intent: f64,
    sentiment: f64,
}

fn evaluate() -> Scores {
    let rows = fixture();
    let analyzer = Analyzer::default_bilingual();
    let mut table: BTreeMap<String, Counts> = BTreeMap::new();
    let none = "(out of scope)".to_owned();
    let (mut intent_ok, mut sentiment_ok) = (0, 0);
    let mut by_language: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut sentiment_matrix: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &rows {
        let a = analyzer.analyze(&r.text);
        let predicted = a.intents.intent().map(str::to_owned).unwrap_or_else(|| none.clone());
        let actual = r.intent.clone().unwrap_or_else(|| none.clone());
        let hit = predicted == actual;
        intent_ok += usize::from(hit);
        table.entry(predicted.clone()).or_default().predicted += 1;
        table.entry(actual.clone()).or_default().actual += 1;
        if hit {
            table.entry(actual).or_default().true_positive += 1;
        }
        let sentiment_hit = a.sentiment.label == r.sentiment;
        sentiment_ok += usize::from(sentiment_hit);
        *sentiment_matrix
            .entry((format!("{:?}", r.sentiment), format!("{:?}", a.sentiment.label)))
            .or_default() += 1;
        let lang = if r.text.chars().any(is_han) {
            "Chinese (incl. mixed)"
        } else {
            "English"
        };
        let e = by_language.entry(lang).or_default();
        e.0 += 1;
        e.1 += usize::from(hit);
        e.2 += usize::from(sentiment_hit);
    }

    let scores = Scores {
        intent: ratio(intent_ok, rows.len()),
        sentiment: ratio(sentiment_ok, rows.len()),
    };
    println!("\n| intent | precision | recall | support |\n|---|---:|---:|---:|");
    for (name, c) in &table {
        println!(
            "| {name} | {:.3} | {:.3} | {} |",
            ratio(c.true_positive, c.predicted),
            ratio(c.true_positive, c.actual),
            c.actual
        );
    }
    println!(
        "\nintent accuracy: {intent_ok}/{} = {:.3} (target {INTENT_TARGET})",
        rows.len(),
        scores.intent
    );
    println!(
        "sentiment accuracy: {sentiment_ok}/{} = {:.3} (target {SENTIMENT_TARGET})",
        rows.len(),
        scores.sentiment
    );
    for (lang, (n, i, s)) in &by_language {
        println!(
            "  {lang}: intent {:.3}, sentiment {:.3} (n={n})",
            ratio(*i, *n),
            ratio(*s, *n)
        );
    }
    println!("sentiment (labelled, predicted): {sentiment_matrix:?}");
    if scores.intent < INTENT_TARGET || scores.sentiment < SENTIMENT_TARGET {
        println!("TARGET NOT MET: see docs/nlu.md");
    }
    scores
}

/// Prints the per-intent table and guards against regressions.
#[test]
fn evaluation_report() {
    let s = evaluate();
    assert!(
        s.intent >= INTENT_FLOOR,
        "intent accuracy {:.3} fell below {INTENT_FLOOR}",
        s.intent
    );
    assert!(
        s.sentiment >= SENTIMENT_FLOOR,
        "sentiment accuracy {:.3} fell below {SENTIMENT_FLOOR}",
        s.sentiment
    );
}

/// The targets themselves. Ignored while the intent target is not met (docs/nlu.md says by how
/// much); run with `cargo nextest run -p yy-nlu evaluation --run-ignored all --no-capture`.
#[test]
#[ignore = "intent accuracy is below the 0.90 target; see docs/nlu.md"]
fn evaluation_meets_targets() {
    let s = evaluate();
    assert!(
        s.intent >= INTENT_TARGET,
        "intent accuracy {:.3} is below {INTENT_TARGET}",
        s.intent
    );
    assert!(
        s.sentiment >= SENTIMENT_TARGET,
        "sentiment accuracy {:.3} is below {SENTIMENT_TARGET}",
        s.sentiment
    );
}
