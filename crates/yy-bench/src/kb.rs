//! Knowledge-base search: queries per second and latency at 10,000 and 100,000 entries, on one
//! core. The entries are synthetic, made from the 500 fixture entries' own vocabulary: each is a
//! fixture entry whose title and questions have a few words swapped for others of the same
//! language, so that term statistics and posting lengths grow as a real tenant's would. The
//! queries are the development questions (`tests/fixtures/kb/dev.jsonl`). Baseline, measured in
//! the same run on the same queries: tokenising alone (jieba for Chinese), the cheapest step any
//! search must take.

use std::hint::black_box;
use std::time::Instant;

use yy_kb::{Entry, KnowledgeBase, SearchOptions};

use crate::measure::histogram;

/// Sizes of the knowledge-base benchmark.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Knowledge-base sizes, in entries.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    entries: Vec<usize>,
    /// Searches to time at each size.
    #[arg(long, default_value_t = 5_000)]
    queries: u64,
}

const ENTRIES: &str = include_str!("../../../tests/fixtures/kb/entries.json");
const DEV: &str = include_str!("../../../tests/fixtures/kb/dev.jsonl");

/// A fixed-seed generator, so that every run searches the same entries.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn is_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// The words of `text` as written: Chinese by the shared segmenter, others split on spaces.
fn pieces(text: &str) -> Vec<String> {
    if is_chinese(text) {
        yy_nlu::tokenize(text)
            .into_iter()
            .filter_map(|t| text.get(t.span).map(str::to_owned))
            .collect()
    } else {
        text.split_whitespace().map(str::to_owned).collect()
    }
}

/// `text` with about one word in four replaced by a word of the same language's vocabulary.
fn vary(text: &str, vocab: &[String], rng: &mut Lcg) -> String {
    let joiner = if is_chinese(text) { "" } else { " " };
    let words: Vec<String> = pieces(text)
        .into_iter()
        .map(|w| {
            if rng.below(4) == 0 {
                vocab[rng.below(vocab.len())].clone()
            } else {
                w
            }
        })
        .collect();
    let varied = words.join(joiner);
    if varied.trim().is_empty() {
        text.to_owned()
    } else {
        varied
    }
}

fn synthetic(n: usize) -> Vec<Entry> {
    let fixture = yy_kb::import_json(ENTRIES).expect("the fixture entries import");
    let vocabulary = |chinese: bool| -> Vec<String> {
        let mut words: Vec<String> = fixture
            .iter()
            .filter(|e| e.locale.starts_with("zh") == chinese)
            .flat_map(|e| std::iter::once(&e.title).chain(&e.questions))
            .flat_map(|t| pieces(t))
            .collect();
        words.sort();
        words.dedup();
        words
    };
    let (zh, en) = (vocabulary(true), vocabulary(false));
    let mut rng = Lcg(0x6b62_6265_6e63_6821);
    (0..n)
        .map(|i| {
            let mut e = fixture[i % fixture.len()].clone();
            let vocab = if e.locale.starts_with("zh") { &zh } else { &en };
            e.id = format!("{}-{i}", e.id);
            e.title = vary(&e.title, vocab, &mut rng);
            e.questions = e.questions.iter().map(|q| vary(q, vocab, &mut rng)).collect();
            e
        })
        .collect()
}

fn queries() -> Vec<String> {
    DEV.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["question"].as_str().map(str::to_owned))
        .collect()
}

/// Runs the knowledge-base benchmark and prints its report.
pub async fn run(args: Args) {
    println!("# Knowledge-base search benchmark\n");
    yy_nlu::warm_up();
    let queries = queries();
    let options = SearchOptions::default();
    let mut rows = Vec::new();
    for &size in &args.entries {
        let entries = synthetic(size);
        let start = Instant::now();
        let kb = match KnowledgeBase::from_entries(entries) {
            Ok(kb) => kb,
            Err(e) => {
                println!("indexing {size} entries failed: {e}\n");
                continue;
            }
        };
        let build = start.elapsed();
        // Warm-up: caches, allocator.
        for q in queries.iter().cycle().take(500) {
            black_box(kb.search(q, &options).ok());
        }

        let start = Instant::now();
        for i in 0..args.queries {
            black_box(yy_nlu::tokenize(&queries[i as usize % queries.len()]));
        }
        let tokenize = args.queries as f64 / start.elapsed().as_secs_f64();

        let mut latency = histogram();
        let start = Instant::now();
        for i in 0..args.queries {
            let began = Instant::now();
            black_box(kb.search(&queries[i as usize % queries.len()], &options).ok());
            latency.saturating_record(began.elapsed().as_nanos() as u64);
        }
        let rate = args.queries as f64 / start.elapsed().as_secs_f64();
        rows.push((size, build, tokenize, rate, latency));
    }
    println!(
        "{} searches per size on one core (the {} development questions in turn, top 10 with highlights), \
         synthetic entries from the fixture's vocabulary.\n",
        args.queries,
        queries.len()
    );
    println!("| entries | indexing s | measurement | per second | ratio to baseline | p50 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst_p99_ms: f64 = 0.0;
    for (size, build, tokenize, rate, latency) in &rows {
        let micros = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {size} | {:.1} | tokenise only (baseline) | {tokenize:.0} | — | | | |",
            build.as_secs_f64()
        );
        println!(
            "| {size} | | search | {rate:.0} | {:.5} | {:.1} | {:.1} | {:.1} |",
            rate / tokenize,
            micros(0.5),
            micros(0.99),
            latency.max() as f64 / 1000.0
        );
        worst_p99_ms = worst_p99_ms.max(micros(0.99) / 1000.0);
    }
    println!(
        "\nsearch p99 at most {worst_p99_ms:.2} ms (the bot's end-to-end goal is p99 under 30 ms: {})\n",
        if worst_p99_ms < 30.0 { "well within" } else { "NOT met" }
    );
}
