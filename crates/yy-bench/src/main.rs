//! `make bench`: every figure beside a baseline measured in the same run.
//!
//! - `log`: event-log appends and replay against raw JetStream publishes;
//! - `ingest`: messages posted over HTTP through the gateway and the conversation service, with
//!   an open-loop load generator, against raw durable JetStream publishes;
//! - `routing`: language understanding plus rules per message, against tokenising alone;
//! - `webhook`: signed webhook deliveries to a local receiver, against a plain HTTP POST loop;
//! - `kb`: knowledge-base searches at 10,000 and 100,000 entries, against tokenising alone.

mod ingest;
mod kb;
mod log;
mod measure;
mod routing;
mod webhook;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Yiwaiwai benchmarks")]
struct Cli {
    #[command(subcommand)]
    bench: Option<Bench>,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Event-log appends and replay.
    Log(log::Args),
    /// End-to-end message ingest over HTTP.
    Ingest(ingest::Args),
    /// Routing decisions: language understanding plus rules.
    Routing(routing::Args),
    /// Signed webhook deliveries to a local receiver.
    Webhook(webhook::Args),
    /// Knowledge-base searches at 10,000 and 100,000 entries.
    Kb(kb::Args),
}

#[tokio::main]
async fn main() {
    match Cli::parse().bench {
        Some(Bench::Log(args)) => log::run(args).await,
        Some(Bench::Ingest(args)) => ingest::run(args).await,
        Some(Bench::Routing(args)) => routing::run(args).await,
        Some(Bench::Webhook(args)) => webhook::run(args).await,
        Some(Bench::Kb(args)) => kb::run(args).await,
        None => {
            log::run(log::Args::parse_from(["log"])).await;
            ingest::run(ingest::Args::parse_from(["ingest"])).await;
            routing::run(routing::Args::parse_from(["routing"])).await;
            webhook::run(webhook::Args::parse_from(["webhook"])).await;
            kb::run(kb::Args::parse_from(["kb"])).await;
        }
    }
}
