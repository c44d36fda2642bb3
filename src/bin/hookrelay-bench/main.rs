//! End-to-end benchmark: a fast receiver on loopback, the service on a fresh
//! database, N events published by C concurrent clients.
//!
//! - `--scenario fanout` (default): F endpoints subscribed to every event.
//!   Prints throughput, publish→receipt latency, and lost/duplicate counts.
//! - `--scenario isolation`: one healthy endpoint, measured twice in the same
//!   service and database, each time in its own tenant: first alone, then
//!   beside a dead endpoint (connection refused) and one that hangs past its
//!   timeout. Prints the healthy endpoint's latency in both runs and the
//!   ratio of its p99 (target: at most 1.5×).

mod client;
mod fanout;
mod isolation;
mod receiver;

use clap::{Parser, ValueEnum};
use client::Bench;
use hookrelay::config::Settings;
use hookrelay::startup::Application;
use receiver::{start_receiver, Arrivals};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    scenario: Scenario,
    /// Events to publish (in the isolation scenario: per run).
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Concurrent publishing clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Publish at most this many events per second in all (event n is sent
    /// no earlier than n/rate s after the start); 0: as fast as the clients can.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Endpoints subscribed to every event (fanout scenario only).
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Database to run on; default: a fresh SQLite file in a temporary directory.
    /// A PostgreSQL database must exist and be empty.
    #[arg(long)]
    database_url: Option<String>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Isolation: `timeout_seconds` of the hanging endpoint.
    #[arg(long, default_value_t = 2)]
    hang_timeout_seconds: u32,
    /// Isolation: how long the hanging receiver holds each request before it
    /// answers; must exceed --hang-timeout-seconds.
    #[arg(long, default_value_t = 10)]
    hang_seconds: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// F healthy endpoints subscribed to every event.
    Fanout,
    /// One healthy endpoint alone, then beside a dead and a hanging endpoint.
    Isolation,
}

const ADMIN_KEY: &str = "bench-admin-key";

fn main() -> Result<(), String> {
    let args = Args::parse();
    if args.scenario == Scenario::Isolation {
        if args.fanout != 1 {
            return Err("--fanout applies to the fanout scenario only".to_owned());
        }
        if args.hang_seconds <= u64::from(args.hang_timeout_seconds) {
            return Err("--hang-seconds must exceed --hang-timeout-seconds".to_owned());
        }
    }
    let scratch = std::env::temp_dir().join(format!("hookrelay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", scratch.join("bench.db").display()));

    let arrivals: Arrivals = Arc::default();
    let receiver_port = start_receiver(Arc::clone(&arrivals))?;
    let service_port = start_service(&database_url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let bench = Bench::new(service_port, receiver_port);
    let outcome = match args.scenario {
        Scenario::Fanout => runtime.block_on(fanout::run_fanout(&args, &bench, &arrivals)),
        Scenario::Isolation => runtime.block_on(isolation::run_isolation(&args, &bench, &arrivals)),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

fn start_service(database_url: &str) -> Result<u16, String> {
    let mut settings = Settings::new(database_url);
    settings.admin_key = Some(ADMIN_KEY.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_named("bench-service", move || {
        actix_web::rt::System::new().block_on(async move {
            match Application::build(settings).await {
                Ok(app) => {
                    let _ = tx.send(Ok(app.port()));
                    let _ = app.run_until_stopped().await;
                }
                Err(error) => {
                    let _ = tx.send(Err(error.to_string()));
                }
            }
            Ok(())
        })
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())?
}

/// Empty unless publishing is paced, so that the default output is unchanged.
fn rate_label(args: &Args) -> String {
    if args.rate > 0.0 {
        format!(" rate={}", args.rate)
    } else {
        String::new()
    }
}

fn backend_name(args: &Args) -> &'static str {
    match &args.database_url {
        Some(url) if url.starts_with("postgres") => "postgres",
        _ => "sqlite",
    }
}

fn spawn_named<F: FnOnce() -> std::io::Result<()> + Send + 'static>(name: &str, work: F) {
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if let Err(error) = work() {
                eprintln!("{error}");
            }
        });
    if let Err(error) = spawned {
        eprintln!("cannot start a thread: {error}");
    }
}
