//! End-to-end benchmark: a fast receiver on loopback, the service on a fresh
//! database, N events published by C concurrent clients to F endpoints.
//! Prints throughput, publish→receipt latency, and lost/duplicate counts.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use clap::Parser;
use hookrelay::config::Settings;
use hookrelay::startup::Application;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Events to publish.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Concurrent publishing clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Endpoints subscribed to every event.
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Database to run on; default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

const ADMIN_KEY: &str = "bench-admin-key";

/// (endpoint index, event id) → arrival times.
type Arrivals = Arc<Mutex<HashMap<(usize, String), Vec<Instant>>>>;

fn main() -> Result<(), String> {
    let args = Args::parse();
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
    let outcome = runtime.block_on(run(&args, service_port, receiver_port, &arrivals));
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
        map.entry((endpoint.into_inner(), id))
            .or_default()
            .push(now);
    }
    HttpResponse::NoContent().finish()
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

async fn run(
    args: &Args,
    service_port: u16,
    receiver_port: u16,
    arrivals: &Arrivals,
) -> Result<(), String> {
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{service_port}/v1/tenants");
    let post =
        |url: String, body: Value| client.post(url).bearer_auth(ADMIN_KEY).json(&body).send();
    let created = post(base.clone(), json!({"id": "bench", "name": "Bench"}))
        .await
        .map_err(|e| e.to_string())?;
    if !created.status().is_success() {
        return Err(format!("creating the tenant answered {}", created.status()));
    }
    for n in 0..args.fanout {
        let url = format!("http://127.0.0.1:{receiver_port}/ep/{n}");
        let response = post(format!("{base}/bench/endpoints"), json!({"url": url}))
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "creating an endpoint answered {}",
                response.status()
            ));
        }
    }

    let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (client, published, next, url, total) = (
            client.clone(),
            Arc::clone(&published),
            Arc::clone(&next),
            format!("{base}/bench/events"),
            args.events,
        );
        clients.push(tokio::spawn(async move {
            let mut failures = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    return failures;
                }
                let id = format!("bench-{n}");
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
    let mut publish_failures = 0;
    for task in clients {
        publish_failures += task.await.map_err(|e| e.to_string())?;
    }
    let publish_elapsed = started.elapsed();
    let accepted = published.lock().map(|m| m.len()).unwrap_or_default();
    let expected = accepted * args.fanout;

    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    loop {
        let received = arrivals.lock().map(|m| m.len()).unwrap_or_default();
        if received >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let published = published.lock().map_err(|e| e.to_string())?;
    let arrivals = arrivals.lock().map_err(|e| e.to_string())?;
    let mut latencies: Vec<Duration> = Vec::new();
    let mut last_arrival = started;
    let mut duplicates = 0;
    for ((_, id), times) in arrivals.iter() {
        let Some(sent) = published.get(id) else {
            continue;
        };
        duplicates += times.len() - 1;
        let first = times.iter().min().copied().unwrap_or(*sent);
        last_arrival = last_arrival.max(first);
        latencies.push(first.saturating_duration_since(*sent));
    }
    latencies.sort();
    let delivered = latencies.len();
    let delivery_elapsed = last_arrival
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };

    println!(
        "events={} concurrency={} fanout={} database={}",
        args.events,
        args.concurrency,
        args.fanout,
        backend_name(args)
    );
    println!("accepted: {accepted} events in {:.2} s = {:.0} events/s (publish failures: {publish_failures})", publish_elapsed.as_secs_f64(), accepted as f64 / publish_elapsed.as_secs_f64());
    println!("delivered: {delivered} deliveries in {delivery_elapsed:.2} s = {:.0} deliveries/s, {:.0} events/s", delivered as f64 / delivery_elapsed, delivered as f64 / args.fanout as f64 / delivery_elapsed);
    println!(
        "latency publish->receipt ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        percentile(0.50),
        percentile(0.99),
        percentile(1.0)
    );
    println!(
        "lost: {}  duplicates: {duplicates}",
        expected.saturating_sub(delivered)
    );
    Ok(())
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
