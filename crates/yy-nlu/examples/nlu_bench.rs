//! Throughput of `Analyzer::analyze` on 100-character Chinese and English messages, one thread.
//!
//! `cargo run --release -p yy-nlu --example nlu_bench [seconds per case, default 2]`
//!
//! Prints the one-off costs (loading the shared dictionaries, training the built-in model), then
//! one line per case: `bench <case> <analyses/s> analyses/s (<µs> µs each, <n> runs)`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use yy_nlu::{Analyzer, EntityExtractor, IntentModel};

/// Messages of exactly 100 characters, varied so that caches do not flatter the numbers.
const ZH: &[&str] = &[
    "你好，我上周五在你们店里买了一件羽绒服，订单号是A-20231125，到现在已经一个星期了还没有发货，请问到底什么时候能发出来？如果再不发货我就要申请退款了，真的很着急，麻烦尽快帮我处理一下，谢谢了！",
    "客服你好，我昨天收到的包裹里面的杯子碎了两个，外包装也是破的，我拍了照片可以发给你们看，请问这种情况是给我补发还是直接退款？另外我的手机号是13812345678，处理好了以后请尽快打电话联系我一下吧",
    "我已经等了半个多月了，物流信息一直停在转运中心不动，打你们电话也没人接，在线客服只会回复模板，你们这样的服务态度真的让人非常失望，请马上给我转人工客服，我要投诉，你们必须尽快给我一个满意的说法！！！！",
];
const EN: &[&str] = &[
    "Hi, I ordered a winter jacket last Friday, order #20231125-7781, and it still has not shipped. When?",
    "The mug in my parcel arrived cracked and the box was torn. Can you refund me or send a new one? Thx!",
    "I have waited two weeks, tracking has not moved and nobody answers. Terrible service, get me a human",
];

fn run(analyzer: &Analyzer, name: &str, messages: &[&str], budget: Duration) {
    for m in messages {
        assert_eq!(
            m.chars().count(),
            100,
            "{name} message is {} characters: {m}",
            m.chars().count()
        );
    }
    // Warm the caches and the lazily loaded dictionaries before timing.
    for m in messages {
        black_box(analyzer.analyze(m));
    }
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        for m in messages {
            black_box(analyzer.analyze(black_box(m)));
        }
        runs += messages.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = runs as f64 / secs;
    println!(
        "bench {name} {rate:.0} analyses/s ({:.1} µs each, {runs} runs)",
        1e6 / rate
    );
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds.max(0.1));
    let start = Instant::now();
    yy_nlu::warm_up();
    println!("bench warm-up {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let start = Instant::now();
    let model = IntentModel::default_bilingual();
    println!("bench train-default {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let analyzer = Analyzer::new(model, EntityExtractor::default());
    run(&analyzer, "zh-100", ZH, budget);
    run(&analyzer, "en-100", EN, budget);
}
