//! Routing decisions: language understanding of a customer's message plus the tenant's rules,
//! on one core, for 100-character messages in Chinese and English. Baseline, measured in the same
//! run on the same messages: tokenising alone (jieba for Chinese), the cheapest step any
//! understanding of the text must take.

use std::hint::black_box;
use std::time::{Duration, Instant};

use yy_nlu::Analyzer;
use yy_routing::understanding::{MessageContext, route};
use yy_rules::RuleSet;

use crate::measure::histogram;

/// Sizes of the routing benchmark.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Decisions to time.
    #[arg(long, default_value_t = 200_000)]
    decisions: u64,
}

const SEEDS: [&str; 8] = [
    "你好，我上周买的耳机到现在还没有发货，订单号 A-1024，能帮我查一下物流到哪里了吗？",
    "你们的服务太差了！气死我了，退款申请提交三天了还没人处理，我要投诉！",
    "请问怎么修改收货地址？我搬家了，新地址在上海市浦东新区，麻烦尽快帮我改一下。",
    "转人工，我要跟真人客服说话，机器人一直答非所问，浪费我的时间。",
    "Hi, I ordered a pair of headphones last week and they still have not shipped. Order A-1024, where is it?",
    "This is the worst service ever! I asked for a refund three days ago and nobody answered. Unacceptable!",
    "I can't log in to my account, the password reset email never arrives. Can someone help me please?",
    "Thanks a lot, the package arrived today and everything looks great. Have a nice day!",
];

/// Each seed repeated to at least 100 characters, as a long customer message would be.
fn messages() -> Vec<String> {
    SEEDS
        .iter()
        .map(|seed| {
            let mut text = (*seed).to_owned();
            while text.chars().count() < 100 {
                text.push(' ');
                text.push_str(seed);
            }
            text.chars().take(100).collect()
        })
        .collect()
}

/// Runs the routing benchmark and prints its report.
pub async fn run(args: Args) {
    println!("# Routing benchmark\n");
    let analyzer = Analyzer::default_bilingual();
    let rules = RuleSet::parse(include_str!("../../yy-rules/examples/rules.json")).expect("the example rules parse");
    let messages = messages();
    let context = MessageContext {
        channel: "web".into(),
        contact_attributes: [("tier".to_owned(), "vip".to_owned())].into(),
        now: 1_764_126_000,
        ..MessageContext::default()
    };
    // Warm-up: dictionaries, caches, allocator.
    for text in messages.iter().cycle().take(2_000) {
        black_box(route(&analyzer, &rules, text, &context));
    }

    let start = Instant::now();
    for i in 0..args.decisions {
        black_box(yy_nlu::tokenize(&messages[i as usize % messages.len()]));
    }
    let tokenize = start.elapsed();

    let mut latency = histogram();
    let start = Instant::now();
    for i in 0..args.decisions {
        let began = Instant::now();
        black_box(route(
            &analyzer,
            &rules,
            &messages[i as usize % messages.len()],
            &context,
        ));
        latency.saturating_record(began.elapsed().as_nanos() as u64);
    }
    let routing = start.elapsed();

    let rate = |elapsed: Duration| args.decisions as f64 / elapsed.as_secs_f64();
    let micros = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} decisions on one core over 100-character messages (4 Chinese, 4 English), the example rule set \
         of {} rules.\n",
        args.decisions,
        rules.len()
    );
    println!("| measurement | per second | ratio to baseline | p50 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|---|");
    println!("| tokenise only (baseline) | {:.0} | — | | | |", rate(tokenize));
    println!(
        "| understand + decide | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} |",
        rate(routing),
        rate(routing) / rate(tokenize),
        micros(0.5),
        micros(0.99),
        latency.max() as f64 / 1000.0
    );
    let p99_ms = micros(0.99) / 1000.0;
    println!(
        "\n{:.0} decisions/s per core (goal: at least 20,000: {}); p99 {:.3} ms (goal: under 1 ms: {})\n",
        rate(routing),
        if rate(routing) >= 20_000.0 { "met" } else { "NOT met" },
        p99_ms,
        if p99_ms < 1.0 { "met" } else { "NOT met" }
    );
}
