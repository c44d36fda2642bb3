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

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::{Parser, ValueEnum};
use hookrelay::config::Settings;
use hookrelay::startup::Application;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Endpoint index → event id → arrival times.
type Arrivals = Arc<Mutex<HashMap<usize, HashMap<String, Vec<Instant>>>>>;

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
        Scenario::Fanout => runtime.block_on(run_fanout(&args, &bench, &arrivals)),
        Scenario::Isolation => runtime.block_on(run_isolation(&args, &bench, &arrivals)),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    outcome
}

fn start_receiver(arrivals: Arrivals) -> Result<u16, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_named("bench-receiver", move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::new(arrivals);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/ep/{n}", web::post().to(receive))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the receiver on loopback");
            let _ = tx.send(server.addrs()[0].port());
            server.run().await
        })
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

/// Takes the body so that the connection stays reusable for the next request.
async fn receive(
    arrivals: web::Data<Arrivals>,
    request: HttpRequest,
    endpoint: web::Path<usize>,
    _body: web::Bytes,
) -> HttpResponse {
    let now = Instant::now();
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut map) = arrivals.lock() {
        map.entry(endpoint.into_inner())
            .or_default()
            .entry(id)
            .or_default()
            .push(now);
    }
    HttpResponse::NoContent().finish()
}

/// A receiver on its own thread that holds every request for `hold` (an async
/// timer, so held requests cost no threads) and counts the requests it got.
fn start_hanging_receiver(hold: Duration, requests: Arc<AtomicUsize>) -> Result<u16, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_named("bench-hanging", move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::new((hold, requests));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(hang))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the hanging receiver on loopback");
            let _ = tx.send(server.addrs()[0].port());
            server.run().await
        })
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

async fn hang(state: web::Data<(Duration, Arc<AtomicUsize>)>, _body: web::Bytes) -> HttpResponse {
    state.1.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::time::sleep(state.0).await;
    HttpResponse::NoContent().finish()
}

/// A loopback port with nothing listening: bound, then released.
fn refused_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
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

/// The publishing side: an HTTP client and the service's tenants URL.
struct Bench {
    client: reqwest::Client,
    tenants: String,
    receiver_port: u16,
}

/// What one publishing run produced.
struct Load {
    /// Accepted event id → when its publish request was sent.
    published: HashMap<String, Instant>,
    failures: usize,
    started: Instant,
    elapsed: Duration,
}

/// First arrivals at some endpoints of the events of one `Load`.
struct Deliveries {
    /// Sorted publish→first receipt latencies.
    latencies: Vec<Duration>,
    duplicates: usize,
    /// From the first publish to the last first arrival, in seconds.
    elapsed: f64,
}

impl Bench {
    fn new(service_port: u16, receiver_port: u16) -> Bench {
        Bench {
            client: reqwest::Client::new(),
            tenants: format!("http://127.0.0.1:{service_port}/v1/tenants"),
            receiver_port,
        }
    }

    /// The fast receiver's URL for endpoint index `n`.
    fn receiver_url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/ep/{n}", self.receiver_port)
    }

    /// POSTs `body` to `url` and returns the created resource.
    async fn create(&self, url: String, body: Value, what: &str) -> Result<Value, String> {
        let response = self
            .client
            .post(url)
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("creating {what} answered {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    async fn create_tenant(&self, tenant: &str) -> Result<(), String> {
        let body = json!({"id": tenant, "name": tenant});
        self.create(self.tenants.clone(), body, "the tenant")
            .await
            .map(drop)
    }

    /// Creates an endpoint and returns its id.
    async fn create_endpoint(&self, tenant: &str, fields: Value) -> Result<String, String> {
        let url = format!("{}/{tenant}/endpoints", self.tenants);
        let created = self.create(url, fields, "an endpoint").await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the created endpoint has no id".to_owned())
    }

    /// The endpoint's `stats` as the service reports them (`null` if none).
    async fn endpoint_stats(&self, tenant: &str, id: &str) -> Result<Value, String> {
        let url = format!("{}/{tenant}/endpoints/{id}", self.tenants);
        let response = self
            .client
            .get(url)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut endpoint: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(endpoint["stats"].take())
    }

    /// Publishes `events` events with ids `{prefix}-{n}` from `concurrency`
    /// clients, at most `rate` a second if `rate` is positive.
    async fn publish(
        &self,
        tenant: &str,
        prefix: &str,
        events: usize,
        concurrency: usize,
        rate: f64,
    ) -> Result<Load, String> {
        let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..concurrency {
            let (client, published, next, url, prefix) = (
                self.client.clone(),
                Arc::clone(&published),
                Arc::clone(&next),
                format!("{}/{tenant}/events", self.tenants),
                prefix.to_owned(),
            );
            clients.push(tokio::spawn(async move {
                let mut failures = 0usize;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= events {
                        return failures;
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(n as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let id = format!("{prefix}-{n}");
                    let at = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&json!({"type": "bench.event", "id": id, "payload": {"n": n}}))
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().as_u16() == 202 => {
                            if let Ok(mut map) = published.lock() {
                                map.insert(id, at);
                            }
                        }
                        _ => failures += 1,
                    }
                }
            }));
        }
        let mut failures = 0;
        for task in clients {
            failures += task.await.map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed();
        let published = std::mem::take(&mut *published.lock().map_err(|e| e.to_string())?);
        Ok(Load {
            published,
            failures,
            started,
            elapsed,
        })
    }
}

impl Load {
    fn accepted(&self) -> usize {
        self.published.len()
    }

    fn events_per_second(&self) -> f64 {
        self.accepted() as f64 / self.elapsed.as_secs_f64()
    }

    /// Waits until `endpoints`, which only this load's events reach, have
    /// received every accepted event, or until `deadline`.
    async fn wait_for(&self, arrivals: &Arrivals, endpoints: &[usize], deadline: Instant) {
        let expected = self.accepted() * endpoints.len();
        loop {
            let received: usize = arrivals
                .lock()
                .map(|m| {
                    endpoints
                        .iter()
                        .filter_map(|n| m.get(n))
                        .map(|ids| ids.len())
                        .sum()
                })
                .unwrap_or_default();
            if received >= expected || Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// This load's deliveries to `endpoints`, as the receiver saw them.
    fn deliveries(&self, arrivals: &Arrivals, endpoints: &[usize]) -> Result<Deliveries, String> {
        let arrivals = arrivals.lock().map_err(|e| e.to_string())?;
        let mut latencies: Vec<Duration> = Vec::new();
        let mut last_arrival = self.started;
        let mut duplicates = 0;
        let ids = endpoints.iter().filter_map(|n| arrivals.get(n));
        for (id, times) in ids.flatten() {
            let Some(sent) = self.published.get(id) else {
                continue;
            };
            duplicates += times.len() - 1;
            let first = times.iter().min().copied().unwrap_or(*sent);
            last_arrival = last_arrival.max(first);
            latencies.push(first.saturating_duration_since(*sent));
        }
        latencies.sort();
        let elapsed = last_arrival
            .saturating_duration_since(self.started)
            .as_secs_f64()
            .max(1e-9);
        Ok(Deliveries {
            latencies,
            duplicates,
            elapsed,
        })
    }
}

impl Deliveries {
    fn delivered(&self) -> usize {
        self.latencies.len()
    }

    fn per_second(&self) -> f64 {
        self.delivered() as f64 / self.elapsed
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        self.latencies
            .get(((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

async fn run_fanout(args: &Args, bench: &Bench, arrivals: &Arrivals) -> Result<(), String> {
    bench.create_tenant("bench").await?;
    for n in 0..args.fanout {
        let url = bench.receiver_url(n);
        bench.create_endpoint("bench", json!({"url": url})).await?;
    }

    let load = bench
        .publish("bench", "bench", args.events, args.concurrency, args.rate)
        .await?;
    let endpoints: Vec<usize> = (0..args.fanout).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    load.wait_for(arrivals, &endpoints, deadline).await;
    let expected = load.accepted() * args.fanout;
    let result = load.deliveries(arrivals, &endpoints)?;
    let delivered = result.delivered();

    println!(
        "events={} concurrency={} fanout={} database={}{}",
        args.events,
        args.concurrency,
        args.fanout,
        backend_name(args),
        rate_label(args)
    );
    println!(
        "accepted: {} events in {:.2} s = {:.0} events/s (publish failures: {})",
        load.accepted(),
        load.elapsed.as_secs_f64(),
        load.events_per_second(),
        load.failures
    );
    println!(
        "delivered: {delivered} deliveries in {:.2} s = {:.0} deliveries/s, {:.0} events/s",
        result.elapsed,
        result.per_second(),
        result.per_second() / args.fanout as f64
    );
    println!(
        "latency publish->receipt ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        result.percentile_ms(0.50),
        result.percentile_ms(0.99),
        result.percentile_ms(1.0)
    );
    println!(
        "lost: {}  duplicates: {}",
        expected.saturating_sub(delivered),
        result.duplicates
    );
    Ok(())
}

/// Target for the healthy endpoint's p99 beside sick neighbours, relative to alone.
const ISOLATION_TARGET: f64 = 1.5;

/// Two runs in one service and database, each in its own tenant with its own
/// healthy endpoint: `alone` first, then `sick` (so that no retry of a sick
/// endpoint is still due while the healthy one is measured alone).
async fn run_isolation(args: &Args, bench: &Bench, arrivals: &Arrivals) -> Result<(), String> {
    let hanging_requests = Arc::new(AtomicUsize::new(0));
    let hanging_port = start_hanging_receiver(
        Duration::from_secs(args.hang_seconds),
        Arc::clone(&hanging_requests),
    )?;
    let dead_port = refused_port()?;
    println!(
        "scenario=isolation events={} concurrency={} database={}{}",
        args.events,
        args.concurrency,
        backend_name(args),
        rate_label(args)
    );
    println!(
        "neighbours: dead (connection refused, default settings); hanging (timeout_seconds {}, \
         holds each request {} s); both on the default retry schedule",
        args.hang_timeout_seconds, args.hang_seconds
    );

    let deadline = |from: Instant| from + Duration::from_secs(args.timeout_seconds);
    let (alone_endpoint, sick_endpoint) = (0, 1);
    let (neighbours_endpoint, neighbour_endpoints) = (2, [3, 4]);

    bench.create_tenant("alone").await?;
    let url = bench.receiver_url(alone_endpoint);
    bench.create_endpoint("alone", json!({"url": url})).await?;
    let load = bench
        .publish("alone", "alone", args.events, args.concurrency, args.rate)
        .await?;
    load.wait_for(arrivals, &[alone_endpoint], deadline(Instant::now()))
        .await;
    let alone = load.deliveries(arrivals, &[alone_endpoint])?;
    print_isolation_run("alone", &load, &alone);
    // Let the last attempt results reach the database before the next run.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The same fan-out (three deliveries an event) with healthy neighbours
    // separates the cost of fan-out from the cost of sickness.
    bench.create_tenant("neighbours").await?;
    for n in neighbour_endpoints {
        let url = bench.receiver_url(n);
        bench
            .create_endpoint("neighbours", json!({"url": url}))
            .await?;
    }
    let url = bench.receiver_url(neighbours_endpoint);
    bench
        .create_endpoint("neighbours", json!({"url": url}))
        .await?;
    let load = bench
        .publish(
            "neighbours",
            "neighbours",
            args.events,
            args.concurrency,
            args.rate,
        )
        .await?;
    load.wait_for(arrivals, &[neighbours_endpoint], deadline(Instant::now()))
        .await;
    let neighbours = load.deliveries(arrivals, &[neighbours_endpoint])?;
    print_isolation_run("healthy neighbours", &load, &neighbours);
    tokio::time::sleep(Duration::from_secs(1)).await;

    bench.create_tenant("sick").await?;
    let dead_url = format!("http://127.0.0.1:{dead_port}/dead");
    let dead = bench
        .create_endpoint("sick", json!({"url": dead_url}))
        .await?;
    let hanging_url = format!("http://127.0.0.1:{hanging_port}/hang");
    let hanging = bench
        .create_endpoint(
            "sick",
            json!({"url": hanging_url, "timeout_seconds": args.hang_timeout_seconds}),
        )
        .await?;
    let url = bench.receiver_url(sick_endpoint);
    bench.create_endpoint("sick", json!({"url": url})).await?;
    let load = bench
        .publish("sick", "sick", args.events, args.concurrency, args.rate)
        .await?;
    load.wait_for(arrivals, &[sick_endpoint], deadline(Instant::now()))
        .await;
    let sick = load.deliveries(arrivals, &[sick_endpoint])?;
    print_isolation_run("with sick", &load, &sick);
    println!(
        "[with sick] after {:.2} s: dead endpoint stats {}; hanging endpoint stats {}, \
         requests received {}",
        load.started.elapsed().as_secs_f64(),
        bench.endpoint_stats("sick", &dead).await?,
        bench.endpoint_stats("sick", &hanging).await?,
        hanging_requests.load(Ordering::Relaxed)
    );

    let p99_sick = sick.percentile_ms(0.99);
    for (baseline, p99) in [
        ("alone", alone.percentile_ms(0.99)),
        ("with healthy neighbours", neighbours.percentile_ms(0.99)),
    ] {
        let ratio = p99_sick / p99.max(1e-9);
        println!(
            "healthy p99 with sick / {baseline}: {p99_sick:.1} / {p99:.1} ms = {ratio:.2}x \
             (target <= {ISOLATION_TARGET}x: {})",
            if ratio <= ISOLATION_TARGET {
                "met"
            } else {
                "missed"
            }
        );
    }
    Ok(())
}

fn print_isolation_run(label: &str, load: &Load, healthy: &Deliveries) {
    println!(
        "[{label}] accepted: {} events in {:.2} s = {:.0} events/s (publish failures: {})",
        load.accepted(),
        load.elapsed.as_secs_f64(),
        load.events_per_second(),
        load.failures
    );
    println!(
        "[{label}] healthy delivered: {} in {:.2} s = {:.0} deliveries/s; \
         latency publish->receipt ms: p50 {:.1}  p99 {:.1}  max {:.1}; lost: {}  duplicates: {}",
        healthy.delivered(),
        healthy.elapsed,
        healthy.per_second(),
        healthy.percentile_ms(0.50),
        healthy.percentile_ms(0.99),
        healthy.percentile_ms(1.0),
        load.accepted().saturating_sub(healthy.delivered()),
        healthy.duplicates
    );
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
