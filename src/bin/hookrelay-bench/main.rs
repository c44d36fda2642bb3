//! End-to-end benchmark on loopback, on a fresh database (SQLite by default,
//! PostgreSQL with `--database-url`).
//!
//! In-process (the service runs inside the bench, beside a fast receiver;
//! N events are published by C concurrent clients):
//! - `--scenario fanout` (default): F endpoints subscribed to every event.
//!   Prints throughput, publish→receipt latency, and lost/duplicate counts.
//! - `--scenario isolation`: one healthy endpoint, measured twice in the same
//!   service and database, each time in its own tenant: first alone, then
//!   beside a dead endpoint (connection refused) and one that hangs past its
//!   timeout. Prints the healthy endpoint's latency in both runs and the
//!   ratio of its p99 (target: at most 1.5×).
//!
//! With the real service as a child process (`hookrelay serve`, taken from
//! the bench binary's directory: `cargo build --release` builds both), so
//! that its resident memory (`VmRSS`, sampled every 200 ms) and a real
//! restart (SIGTERM, SIGKILL after 15 s) are measured:
//! - `--scenario backlog --backlog N`: one endpoint refuses connections
//!   while N events of about 1 KiB are published (accumulate); the service
//!   is restarted with them pending (restart); then the endpoint is
//!   disabled (its backlog becomes held), pointed at a counting receiver and
//!   enabled with `replay: held`, and the backlog drains (drain). While the
//!   disable's hold and the enable's replay move the backlog, another tenant
//!   publishes one event at a time; its publish latency (p50, p99, max) is
//!   printed for each move. Prints, per phase, its peak
//!   RSS and duration, the publish and drain rates, the time until the API
//!   answers after the restart, and lost/duplicate counts (targets: at most
//!   150 MiB throughout, serving within 5 s).
//! - `--scenario instances --instances N` (PostgreSQL): N services on one
//!   database, their endpoints (`--fanout`) spread by lease; events are
//!   published through each in turn. Prints throughput, latency, the CPU
//!   time of each instance, of PostgreSQL and of the bench, then kills one
//!   instance and prints the time to the first delivery by the new owner.
//! - `--scenario endpoints --endpoints N`: N idle endpoints created by C
//!   concurrent clients, spread over tenants; prints the creation rate, the
//!   idle service's RSS, then restarts it and prints the time until the API
//!   answers and the RSS over its first 10 s (targets: at most 250 MiB,
//!   serving within 10 s).

mod backlog;
mod client;
mod endpoints;
mod fanout;
mod instances;
mod isolation;
mod process;
mod receiver;

use clap::{Parser, ValueEnum};
use client::Bench;
use hookrelay::config::{Settings, DEFAULT_WRITER_CONNECTIONS};
use hookrelay::startup::Application;
use process::{RssMonitor, ServiceCommand};
use receiver::{refused_port, start_receiver};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    scenario: Scenario,
    /// Events to publish (in the isolation scenario: per run).
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Concurrent publishing clients (endpoints scenario: creating clients).
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
    /// Fanout and isolation scenarios: the service's writer connections
    /// (`HOOKRELAY_WRITER_CONNECTIONS`; PostgreSQL only).
    #[arg(long, default_value_t = DEFAULT_WRITER_CONNECTIONS)]
    writer_connections: u8,
    /// Give up waiting for deliveries after this many seconds (backlog: for
    /// the drain, which also gives up after 120 s without a new delivery).
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Isolation: `timeout_seconds` of the hanging endpoint.
    #[arg(long, default_value_t = 2)]
    hang_timeout_seconds: u32,
    /// Isolation: how long the hanging receiver holds each request before it
    /// answers; must exceed --hang-timeout-seconds.
    #[arg(long, default_value_t = 10)]
    hang_seconds: u64,
    /// Backlog: events published while the endpoint refuses connections, then
    /// kept pending through a restart and drained.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Backlog: approximate size of each event's payload, in bytes.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Endpoints scenario: idle endpoints to create (nothing is published).
    #[arg(long, default_value_t = 5000)]
    endpoints: usize,
    /// Endpoints scenario: endpoints per tenant (tenants are added as needed).
    #[arg(long, default_value_t = 1000)]
    endpoints_per_tenant: usize,
    /// Fanout scenario: scrape `/metrics` this often while publishing and
    /// delivering, as Prometheus would (0: never).
    #[arg(long, default_value_t = 0)]
    scrape_every_ms: u64,
    /// Instances scenario: how many services share the database.
    #[arg(long, default_value_t = 2)]
    instances: usize,
    /// Backlog, endpoints and instances scenarios: the `hookrelay` binary to run;
    /// default: the one next to this bench binary.
    #[arg(long)]
    service_binary: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// F healthy endpoints subscribed to every event.
    Fanout,
    /// One healthy endpoint alone, then beside a dead and a hanging endpoint.
    Isolation,
    /// The real service's memory through an outage with N pending events,
    /// a restart and the drain.
    Backlog,
    /// The real service's memory and start-up time with N idle endpoints.
    Endpoints,
    /// Several services on one PostgreSQL database: throughput and failover.
    Instances,
}

impl Scenario {
    /// Whether the scenario runs the real service as a child process.
    fn runs_child(self) -> bool {
        matches!(self, Scenario::Backlog | Scenario::Endpoints)
    }
}

/// The receivers run on loopback, which the service refuses to deliver to
/// unless allowed.
const LOOPBACK_TARGETS: &str = "127.0.0.0/8";
const ADMIN_KEY: &str = "hookrelay-bench-admin-key-0123456789";
/// How often a child service's resident memory is read.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

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
    if args.backlog == 0 || args.endpoints == 0 || args.endpoints_per_tenant == 0 {
        return Err(
            "--backlog, --endpoints and --endpoints-per-tenant must be positive".to_owned(),
        );
    }
    let scratch = std::env::temp_dir().join(format!("hookrelay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", scratch.join("bench.db").display()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let outcome = if args.scenario == Scenario::Instances {
        runtime.block_on(instances::run(&args, &database_url, &scratch))
    } else if args.scenario.runs_child() {
        run_with_child(&args, &database_url, &scratch, &runtime)
    } else {
        run_in_process(&args, &database_url, &runtime)
    };
    if outcome.is_ok() || !args.scenario.runs_child() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    outcome
}

fn run_in_process(
    args: &Args,
    database_url: &str,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), String> {
    let receiver = start_receiver()?;
    let service_port = start_service(database_url, args.writer_connections)?;
    let bench = Bench::new(service_port)?;
    match args.scenario {
        Scenario::Isolation => runtime.block_on(isolation::run_isolation(args, &bench, &receiver)),
        _ => runtime.block_on(fanout::run_fanout(args, &bench, &receiver)),
    }
}

/// Runs the service as a child on a loopback port chosen now and kept
/// across restarts; its output goes to `service.log` in `scratch`, which is
/// kept when the run fails.
fn run_with_child(
    args: &Args,
    database_url: &str,
    scratch: &Path,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), String> {
    let port = refused_port()?;
    let log = scratch.join("service.log");
    let command = ServiceCommand::new(args.service_binary.as_deref(), database_url, port, log)?;
    let bench = Bench::new(port)?;
    match args.scenario {
        Scenario::Backlog => runtime.block_on(backlog::run(args, &command, &bench)),
        _ => runtime.block_on(endpoints::run(args, &command, &bench)),
    }
    .map_err(|error| format!("{error} (service log: {})", command.log().display()))
}

fn start_service(database_url: &str, writer_connections: u8) -> Result<u16, String> {
    let mut settings = Settings::new(database_url);
    settings.writer_connections = writer_connections;
    settings.admin_key = Some(ADMIN_KEY.to_owned());
    settings.allow_targets = vec![LOOPBACK_TARGETS
        .parse()
        .map_err(|e| format!("{LOOPBACK_TARGETS}: {e}"))?];
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

/// Prints `label`'s progress, `done()` of `total`, and the service's RSS to
/// stderr every 15 s until the returned task is aborted.
fn spawn_progress(
    label: &'static str,
    total: usize,
    rss: Arc<RssMonitor>,
    done: impl Fn() -> usize + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(15)).await;
            eprintln!(
                "  [{label}] {:.0} s: {} of {total}, RSS {:.1} MiB",
                started.elapsed().as_secs_f64(),
                done(),
                rss.current_mib().unwrap_or_default()
            );
        }
    })
}
