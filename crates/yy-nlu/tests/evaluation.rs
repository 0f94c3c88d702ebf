//! Accuracy of the built-in model on the labelled evaluation set
//! (`tests/fixtures/nlu/labelled.jsonl` at the workspace root) and on the development set
//! (`tests/fixtures/nlu/dev.jsonl`).
//!
//! The development set is what changes to the model are judged by; its failures are printed. The
//! evaluation set is held out: only its summary figures are printed.
//!
//! Print the tables: `cargo nextest run -p yy-nlu evaluation dev_ --no-capture`.

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

const EVALUATION: &str = "labelled.jsonl";
const DEVELOPMENT: &str = "dev.jsonl";

fn fixture(name: &str) -> Vec<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/nlu")
        .join(name);
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
    check_well_formed(&fixture(EVALUATION), 240, 20);
}

#[test]
fn dev_set_is_well_formed() {
    check_well_formed(&fixture(DEVELOPMENT), 150, 15);
}

fn check_well_formed(rows: &[Row], min_rows: usize, min_per_intent: usize) {
    let zh = rows.iter().filter(|r| r.text.chars().any(is_han)).count();
    let en = rows.len() - zh;
    assert!(rows.len() >= min_rows, "{} rows", rows.len());
    assert!(
        zh * 5 >= rows.len() * 2 && en * 5 >= rows.len() * 2,
        "{zh} Chinese, {en} English"
    );
    let names: Vec<String> = default_intents().into_iter().map(|d| d.name).collect();
    let mut per_intent: BTreeMap<Option<&str>, usize> = BTreeMap::new();
    for r in rows {
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
    assert!(
        min >= min_per_intent && max - min <= 4,
        "uneven coverage: {per_intent:?}"
    );
    assert!(
        per_intent.get(&None).copied().unwrap_or(0) >= 12,
        "too few out-of-scope messages"
    );
    let mut seen = HashSet::new();
    for r in rows {
        assert!(seen.insert(normalise(&r.text)), "duplicate: {:?}", r.text);
    }
}

/// The evaluation set must measure generalisation: no message may equal or be contained in a
/// training example, and none may be a near copy of one (character-bigram Jaccard similarity of
/// 0.7 or more).
#[test]
fn evaluation_set_is_disjoint_from_training() {
    check_disjoint_from_training(&fixture(EVALUATION));
}

/// The development set guides changes to the examples; copying its messages into them would make
/// its figures meaningless.
#[test]
fn dev_set_is_disjoint_from_training() {
    check_disjoint_from_training(&fixture(DEVELOPMENT));
}

fn check_disjoint_from_training(rows: &[Row]) {
    let training: Vec<String> = default_intents()
        .iter()
        .flat_map(|d| d.examples.iter().map(|e| normalise(e)))
        .collect();
    let training_grams: Vec<HashSet<(char, char)>> = training.iter().map(|t| bigrams(t)).collect();
    for r in rows {
        let text = normalise(&r.text);
        for (t, grams) in training.iter().zip(&training_grams) {
            assert!(
                !t.contains(&text),
                "text {:?} is contained in training example {t:?}",
                r.text
            );
            let mine = bigrams(&text);
            let union = mine.union(grams).count();
            if union > 0 {
                let jaccard = mine.intersection(grams).count() as f64 / union as f64;
                assert!(
                    jaccard < 0.7,
                    "text {:?} nearly copies training example {t:?} ({jaccard:.2})",
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
/// messages of slack: a change that scores lower than this made things worse. The intent target
/// is met, so it is its own floor on the evaluation set.
const SENTIMENT_FLOOR: f64 = 0.90;
const DEV_INTENT_FLOOR: f64 = 0.86;

struct Scores {
    intent: f64,
    sentiment: f64,
}

/// Prints the per-intent table of `name`; with `show_failures`, also every misclassified message.
fn evaluate(name: &str, show_failures: bool) -> Scores {
    let rows = fixture(name);
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
        if show_failures && !hit {
            println!(
                "miss: {:?} labelled {actual}, predicted {predicted} {:?}",
                r.text, a.intents.top
            );
        }
        table.entry(predicted.clone()).or_default().predicted += 1;
        table.entry(actual.clone()).or_default().actual += 1;
        if hit {
            table.entry(actual).or_default().true_positive += 1;
        }
        let sentiment_hit = a.sentiment.label == r.sentiment;
        if show_failures && !sentiment_hit {
            println!(
                "sentiment miss: {:?} labelled {:?}, predicted {:?} ({:.2})",
                r.text, r.sentiment, a.sentiment.label, a.sentiment.score
            );
        }
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
    println!("\n{name}\n\n| intent | precision | recall | support |\n|---|---:|---:|---:|");
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
    if name == EVALUATION && (scores.intent < INTENT_TARGET || scores.sentiment < SENTIMENT_TARGET) {
        println!("TARGET NOT MET: see docs/nlu.md");
    }
    scores
}

/// Prints the per-intent table and guards sentiment against regressions.
#[test]
fn evaluation_report() {
    let s = evaluate(EVALUATION, false);
    assert!(
        s.sentiment >= SENTIMENT_FLOOR,
        "sentiment accuracy {:.3} fell below {SENTIMENT_FLOOR}",
        s.sentiment
    );
}

/// The targets themselves.
#[test]
fn evaluation_meets_targets() {
    let s = evaluate(EVALUATION, false);
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

/// The development set's figures and failures; the floor guards the changes made by looking at it.
#[test]
fn dev_report() {
    let s = evaluate(DEVELOPMENT, true);
    assert!(
        s.intent >= DEV_INTENT_FLOOR,
        "dev intent accuracy {:.3} fell below {DEV_INTENT_FLOOR}",
        s.intent
    );
}
