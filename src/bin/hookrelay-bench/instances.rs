//! `--scenario instances --instances N` (PostgreSQL only): N `hookrelay
//! serve` children on one database, F endpoints (`--fanout`) spread over
//! them by their leases. Events are published through every instance in
//! turn; prints throughput, publish→receipt latency, lost and duplicated
//! deliveries, and the CPU time each instance, PostgreSQL and the bench
//! spent. Then (N ≥ 2) the last instance is killed (SIGKILL) while events
//! keep coming through the first: prints the time from the kill to the
//! first delivery to one of the dead instance's endpoints by its new owner.

use crate::client::{Bench, Deliveries, Load};
use crate::process::{ServiceCommand, ServiceProcess};
use crate::receiver::{refused_port, start_receiver, Arrivals};
use crate::Args;
use hookrelay::store::{leases, Store};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the leases may take to spread once every instance runs.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);
/// Events a second published through the first instance after the kill.
const FAILOVER_RATE: f64 = 100.0;

fn instance_id(k: usize) -> String {
    format!("bench-{k}")
}

pub async fn run(args: &Args, database_url: &str, scratch: &Path) -> Result<(), String> {
    if !database_url.starts_with("postgres") {
        return Err("--scenario instances needs --database-url postgres://…".to_owned());
    }
    let count = args.instances.max(1);
    let receiver = start_receiver()?;
    let mut services: Vec<ServiceProcess> = Vec::new();
    let mut benches: Vec<Bench> = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    for k in 0..count {
        let port = loop {
            let port = refused_port()?;
            if !ports.contains(&port) {
                break port;
            }
        };
        ports.push(port);
        let log = scratch.join(format!("service-{k}.log"));
        let command = ServiceCommand::new(args.service_binary.as_deref(), database_url, port, log)?
            .with_env("HOOKRELAY_INSTANCE_ID", &instance_id(k))
            .with_env(
                "HOOKRELAY_WRITER_CONNECTIONS",
                &args.writer_connections.to_string(),
            );
        let bench = Bench::new(port)?;
        let (process, _) = command.start(&bench, None).await?;
        services.push(process);
        benches.push(bench);
    }
    let first = &benches[0];
    first.create_tenant("bench").await?;
    let mut endpoint_ids = Vec::new();
    for n in 0..args.fanout {
        let id = first
            .create_endpoint("bench", json!({"url": receiver.url(n)}))
            .await?;
        endpoint_ids.push(id);
    }
    let store = Store::open(database_url).map_err(|e| e.to_string())?;
    let spread = settle(&store, count, args.fanout).await?;
    println!(
        "scenario=instances instances={count} events={} concurrency={} fanout={} database=postgres",
        args.events, args.concurrency, args.fanout
    );
    println!("leases: {spread:?}");

    let pids: Vec<u32> = services.iter().map(ServiceProcess::pid).collect();
    let cpu_before = CpuTimes::read(&pids);
    let loads = publish_through_all(args, &benches).await?;
    let endpoints: Vec<usize> = (0..args.fanout).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let expected = loads.iter().map(Load::accepted).sum::<usize>() * args.fanout;
    while arrived(&receiver.arrivals) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = CpuTimes::read(&pids).since(&cpu_before);
    report(args, &loads, &receiver.arrivals, &endpoints)?;
    cpu.print(count);

    if count >= 2 {
        let dead = Victim {
            index: count - 1,
            endpoint_ids: &endpoint_ids,
        };
        failover(&store, &mut services, first, &receiver.arrivals, dead).await?;
    }
    Ok(())
}

/// Waits until every instance holds its share of the endpoints, give or
/// take one; returns the endpoints each holds.
async fn settle(
    store: &Store,
    count: usize,
    endpoints: usize,
) -> Result<HashMap<String, i64>, String> {
    let (low, high) = (endpoints / count, endpoints.div_ceil(count));
    let started = Instant::now();
    loop {
        let store = store.clone();
        let counts = tokio::task::spawn_blocking(move || {
            let mut db = store.get().map_err(|e| e.to_string())?;
            leases::owned_counts(&mut db).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let settled = (0..count).all(|k| {
            let held = counts.get(&instance_id(k)).copied().unwrap_or(0);
            usize::try_from(held).is_ok_and(|held| (low..=high).contains(&held))
        });
        if settled {
            return Ok(counts);
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(format!(
                "leases not spread after {SETTLE_LIMIT:?}: {counts:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The events, split evenly over the instances, each share published by
/// its share of the clients at once.
async fn publish_through_all(args: &Args, benches: &[Bench]) -> Result<Vec<Load>, String> {
    let count = benches.len();
    let prefixes: Vec<String> = (0..count).map(|k| format!("i{k}")).collect();
    let loads = benches
        .iter()
        .zip(&prefixes)
        .enumerate()
        .map(|(k, (bench, prefix))| {
            let events = args.events / count + usize::from(k < args.events % count);
            let clients = (args.concurrency / count).max(1);
            bench.publish("bench", prefix, events, clients, args.rate / count as f64)
        });
    futures_util::future::join_all(loads)
        .await
        .into_iter()
        .collect()
}

fn report(
    args: &Args,
    loads: &[Load],
    arrivals: &Arrivals,
    endpoints: &[usize],
) -> Result<(), String> {
    let accepted: usize = loads.iter().map(Load::accepted).sum();
    let failures: usize = loads.iter().map(|load| load.failures).sum();
    let publish_secs = loads
        .iter()
        .map(|load| load.elapsed.as_secs_f64())
        .fold(0.0, f64::max);
    let mut merged = Deliveries {
        latencies: Vec::new(),
        duplicates: 0,
        elapsed: 1e-9,
    };
    for load in loads {
        let one = load.deliveries(arrivals, endpoints)?;
        merged.latencies.extend(one.latencies);
        merged.duplicates += one.duplicates;
        merged.elapsed = merged.elapsed.max(one.elapsed);
    }
    merged.latencies.sort();
    let delivered = merged.delivered();
    println!(
        "accepted: {accepted} events in {publish_secs:.2} s = {:.0} events/s (publish failures: {failures})",
        accepted as f64 / publish_secs.max(1e-9)
    );
    println!(
        "delivered: {delivered} deliveries in {:.2} s = {:.0} deliveries/s, {:.0} events/s",
        merged.elapsed,
        merged.per_second(),
        merged.per_second() / args.fanout as f64
    );
    println!(
        "latency publish->receipt ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        merged.percentile_ms(0.50),
        merged.percentile_ms(0.99),
        merged.percentile_ms(1.0)
    );
    println!(
        "lost: {}  duplicates: {}",
        (accepted * args.fanout).saturating_sub(delivered),
        merged.duplicates
    );
    Ok(())
}

/// The instance the failover kills, and every endpoint's id by its index
/// at the receiver.
struct Victim<'a> {
    index: usize,
    endpoint_ids: &'a [String],
}

/// Kills the victim, publishes through the first instance until one of the
/// dead instance's endpoints receives an event published after the kill,
/// and prints how long that took.
async fn failover(
    store: &Store,
    services: &mut [ServiceProcess],
    first: &Bench,
    arrivals: &Arrivals,
    dead: Victim<'_>,
) -> Result<(), String> {
    let victim = instance_id(dead.index);
    let orphaned = {
        let store = store.clone();
        let victim = victim.clone();
        tokio::task::spawn_blocking(move || {
            let mut db = store.get().map_err(|e| e.to_string())?;
            leases::held_by(&mut db, &victim).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??
    };
    let orphaned: Vec<usize> = dead
        .endpoint_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| orphaned.contains(*id))
        .map(|(n, _)| n)
        .collect();
    if orphaned.is_empty() {
        return Err(format!("{victim} holds no endpoint to take over"));
    }
    services[dead.index].kill()?;
    let killed = Instant::now();
    let limit = Duration::from_secs(120);
    let mut n = 0;
    loop {
        let event = json!({"type": "bench.event", "id": format!("f-{n}"), "payload": {"n": n}});
        first.publish_one("bench", &event).await?;
        n += 1;
        if let Some(first_arrival) = first_arrival_after(arrivals, &orphaned, killed) {
            println!(
                "failover: instance {victim} killed (SIGKILL); first delivery to one of its {} endpoints by the new owner {:.2} s later",
                orphaned.len(),
                first_arrival.saturating_duration_since(killed).as_secs_f64()
            );
            return Ok(());
        }
        if killed.elapsed() > limit {
            return Err(format!("no failover within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_secs_f64(1.0 / FAILOVER_RATE)).await;
    }
}

/// Events received, every endpoint counted.
fn arrived(arrivals: &Arrivals) -> usize {
    arrivals
        .lock()
        .map(|m| m.values().map(HashMap::len).sum())
        .unwrap_or_default()
}

fn first_arrival_after(
    arrivals: &Arrivals,
    endpoints: &[usize],
    after: Instant,
) -> Option<Instant> {
    let arrivals = arrivals.lock().ok()?;
    endpoints
        .iter()
        .filter_map(|n| arrivals.get(n))
        .flat_map(|ids| ids.iter())
        .filter(|(id, _)| id.starts_with("f-"))
        .flat_map(|(_, times)| times.iter().copied())
        .filter(|at| *at > after)
        .min()
}

/// CPU time (user and system) spent by the instances, by PostgreSQL's
/// processes and by this bench, in seconds.
struct CpuTimes {
    instances: Vec<f64>,
    postgres: f64,
    bench: f64,
}

impl CpuTimes {
    fn read(pids: &[u32]) -> CpuTimes {
        CpuTimes {
            instances: pids
                .iter()
                .map(|pid| cpu_seconds(*pid).unwrap_or(0.0))
                .collect(),
            postgres: postgres_cpu_seconds(),
            bench: cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    fn since(&self, before: &CpuTimes) -> CpuTimes {
        CpuTimes {
            instances: self
                .instances
                .iter()
                .zip(&before.instances)
                .map(|(after, before)| after - before)
                .collect(),
            postgres: self.postgres - before.postgres,
            bench: self.bench - before.bench,
        }
    }

    fn print(&self, count: usize) {
        let each: Vec<String> = self
            .instances
            .iter()
            .enumerate()
            .map(|(k, secs)| format!("{} {secs:.2}", instance_id(k)))
            .collect();
        let total: f64 = self.instances.iter().sum::<f64>() + self.postgres + self.bench;
        println!(
            "cpu s while publishing and delivering: {} | postgres {:.2} | bench (clients and receiver) {:.2} | {count} instances {:.0} % of the total",
            each.join(", "),
            self.postgres,
            self.bench,
            100.0 * self.instances.iter().sum::<f64>() / total.max(1e-9)
        );
    }
}

/// Clock ticks a second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Every `postgres` process on the machine (the server and its backends).
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(cpu_seconds)
        .sum()
}
