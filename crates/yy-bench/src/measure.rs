//! Measuring: operations, elapsed time and an HDR histogram of latencies.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A measurement: how many operations in how long, and their latencies in microseconds.
pub struct Measured {
    pub ops: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measured {
    /// Several rounds as one measurement: total operations over total time, all latencies.
    pub fn combine(rounds: Vec<Measured>) -> Measured {
        let mut total = Measured {
            ops: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
        };
        for round in rounds {
            total.ops += round.ops;
            total.elapsed += round.elapsed;
            total.latency.add(round.latency).expect("same bounds");
        }
        total
    }

    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub fn line(&self, name: &str, baseline: Option<f64>) -> String {
        let ratio = baseline.map_or("—".to_owned(), |b| format!("{:.2}", self.rate() / b));
        format!(
            "| {name} | {} | {:.0} | {ratio} | {:.2} | {:.2} | {:.2} |",
            self.ops,
            self.rate(),
            self.latency.value_at_quantile(0.5) as f64 / 1000.0,
            self.latency.value_at_quantile(0.99) as f64 / 1000.0,
            self.latency.max() as f64 / 1000.0,
        )
    }
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `ops` operations over `workers` tasks that each do one at a time, timing each.
pub async fn run_workers_indexed<F, Fut>(workers: u64, ops: u64, counter: Arc<AtomicU64>, op: F) -> Measured
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (counter, op) = (counter.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut local = 0;
            while counter.fetch_add(1, Ordering::Relaxed) < ops {
                let began = Instant::now();
                op(worker, local).await;
                latency.saturating_record(began.elapsed().as_micros() as u64);
                local += 1;
            }
            latency
        }));
    }
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await.expect("worker")).expect("same bounds");
    }
    Measured {
        ops,
        elapsed: start.elapsed(),
        latency,
    }
}
