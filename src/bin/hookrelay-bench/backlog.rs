//! `--scenario backlog`: the real service's memory through a long outage of
//! its only endpoint (a), a restart with the whole backlog pending (b), and
//! the drain once the endpoint answers again and is enabled replaying its
//! held deliveries (c).

use crate::client::Bench;
use crate::process::{restart, verdict, RssMonitor, ServiceCommand, STOP_GRACE};
use crate::receiver::{
    refused_port_besides, start_counting_receiver, start_receiver, FastReceiver,
};
use crate::{backend_name, spawn_progress, Args, RSS_SAMPLE_INTERVAL};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANT: &str = "backlog";
/// Event `n` has the id `bl-{n}`.
const EVENT_PREFIX: &str = "bl-";
const RSS_TARGET_MIB: f64 = 150.0;
const SERVING_TARGET: Duration = Duration::from_secs(5);
/// The memory after a restart is the peak over this long after its start.
const RESTART_WINDOW: Duration = Duration::from_secs(10);
/// The drain gives up when no new event has arrived for this long.
const STALL_LIMIT: Duration = Duration::from_secs(120);

const RETRY_SCHEDULE: [u32; 50] = [1; 50];
/// The payload's bytes besides the padding: `{"n":1000000,"pad":""}`.
const PAYLOAD_FRAME: usize = 22;

/// The endpoint's overrides, chosen so that neither the breaker nor the
/// failure policy makes the drain wait: a probe every second through the
/// outage (so the breaker closes ≤ 1 s after the receiver answers), never
/// disabled within 30 days, and 50 retries 1 s apart (the longest schedule
/// allowed, short delays so that the deliveries that failed a probe are
/// not left behind).
fn endpoint_overrides() -> Value {
    json!({
        "retry_schedule": RETRY_SCHEDULE.as_slice(),
        "breaker_cooldown_seconds": 1,
        "breaker_max_cooldown_seconds": 1,
        "disable_after_failures": 1_000_000_000,
        "disable_after_seconds": 2_592_000,
    })
}

fn event_body(n: usize, pad: &str) -> Value {
    json!({
        "type": "bench.backlog",
        "id": format!("{EVENT_PREFIX}{n}"),
        "payload": {"n": n, "pad": pad},
    })
}

pub async fn run(args: &Args, command: &ServiceCommand, bench: &Bench) -> Result<(), String> {
    let events = args.backlog;
    let rss = Arc::new(RssMonitor::start(RSS_SAMPLE_INTERVAL));
    let (mut service, _) = command.start(bench, None).await?;
    rss.watch(&service);
    let dead_port = refused_port_besides(command.port)?;
    let overrides = endpoint_overrides();
    println!(
        "scenario=backlog backlog={events} concurrency={} payload={} B database={} (service log: {})",
        args.concurrency,
        args.payload_bytes,
        backend_name(args),
        command.log().display()
    );
    println!(
        "endpoint overrides: {}; max_in_flight and the global settings: defaults",
        describe(&overrides)
    );

    bench.create_tenant(TENANT).await?;
    let mut fields = overrides;
    fields["url"] = json!(format!("http://127.0.0.1:{dead_port}/down"));
    let endpoint = bench.create_endpoint(TENANT, fields).await?;

    // a. accumulate: everything published while connections are refused.
    rss.take_peak();
    let pad = "x".repeat(args.payload_bytes.saturating_sub(PAYLOAD_FRAME));
    let published = Arc::new(AtomicUsize::new(0));
    let ticker = spawn_progress("accumulate", events, Arc::clone(&rss), {
        let published = Arc::clone(&published);
        move || published.load(std::sync::atomic::Ordering::Relaxed)
    });
    let counted = bench
        .publish_counted(
            TENANT,
            events,
            args.concurrency,
            move |n| event_body(n, &pad),
            &published,
        )
        .await;
    ticker.abort();
    let counted = counted?;
    let peak = rss.take_peak();
    let accepted = counted.accepted_count();
    println!(
        "[accumulate] {accepted} events accepted in {:.1} s = {:.0} events/s (publish failures: {}); \
         peak RSS {peak:.1} MiB (target <= {RSS_TARGET_MIB} MiB: {})",
        counted.elapsed.as_secs_f64(),
        counted.per_second(),
        counted.failures,
        verdict(peak <= RSS_TARGET_MIB)
    );
    let health = bench.endpoint_health(TENANT, &endpoint).await?;
    println!("[outage] {}", health_line(&health));

    // b. restart with the backlog pending.
    let (mut service, restarted) = restart(
        command,
        &mut service,
        bench,
        &rss,
        Some(TENANT),
        RESTART_WINDOW,
    )
    .await?;
    println!(
        "[restart] {}; serving after {:.2} s (target <= {} s: {}); peak RSS in the first {} s \
         {:.1} MiB (target <= {RSS_TARGET_MIB} MiB: {})",
        restarted.stopped,
        restarted.serving_after.as_secs_f64(),
        SERVING_TARGET.as_secs(),
        verdict(restarted.serving_after <= SERVING_TARGET),
        restarted.window.as_secs(),
        restarted.peak_mib,
        verdict(restarted.peak_mib <= RSS_TARGET_MIB)
    );

    // c. the endpoint is disabled (its backlog becomes held), pointed at a
    // receiver that answers, and enabled replaying what it held: the
    // backlog drains through the same paging as after a restart. Meanwhile
    // another tenant publishes, one event at a time: its publish latency
    // while each move runs is what a sick endpoint's backlog costs others.
    let (receiver_port, tally) = start_counting_receiver(EVENT_PREFIX, events)?;
    let bystander = Bystander::start(bench).await?;
    let health = bench.endpoint_health(TENANT, &endpoint).await?;
    let probe = bystander.probe(bench);
    let disable_started = Instant::now();
    if health["status"]["state"] != "disabled" {
        bench.disable_endpoint(TENANT, &endpoint).await?;
    }
    let disabled_in = disable_started.elapsed();
    let held_in = wait_for_queue(bench, &endpoint, "pending", disable_started, args).await?;
    println!(
        "[disable] answered in {:.2} s; all pending held after {held_in:.1} s; {}",
        disabled_in.as_secs_f64(),
        probe.finish().await?
    );
    let url = format!("http://127.0.0.1:{receiver_port}/up");
    bench
        .update_endpoint(TENANT, &endpoint, json!({"url": url}))
        .await?;
    rss.take_peak();
    let probe = bystander.probe(bench);
    let drain_started = Instant::now();
    let enabled = bench.enable_replaying_held(TENANT, &endpoint).await?;
    let enabled_in = drain_started.elapsed();
    let released_in = wait_for_queue(bench, &endpoint, "held", drain_started, args).await?;
    println!(
        "[enable] answered in {:.2} s ({} replayed); all held pending again after {released_in:.1} s; {}",
        enabled_in.as_secs_f64(),
        enabled["replayed"],
        probe.finish().await?
    );
    let how = format!(
        "disabled in {:.1} s, url PATCHed, enabled with replay=held in {:.1} s: {} replayed",
        disabled_in.as_secs_f64(),
        enabled_in.as_secs_f64(),
        enabled["replayed"]
    );
    let ticker = spawn_progress("drain", accepted, Arc::clone(&rss), {
        let tally = Arc::clone(&tally);
        move || tally.unique()
    });
    let deadline = drain_started + Duration::from_secs(args.timeout_seconds);
    let (mut seen, mut last_change) = (0, Instant::now());
    while tally.unique() < accepted && Instant::now() < deadline {
        if tally.unique() != seen {
            (seen, last_change) = (tally.unique(), Instant::now());
        } else if last_change.elapsed() > STALL_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ticker.abort();
    let peak = rss.take_peak();
    // Late duplicates of the last deliveries still count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let outcome = tally.outcome(&counted.accepted)?;
    let (first, last) = tally.first_and_last();
    let since_start = |at: Option<Instant>| {
        at.map_or(0.0, |at| {
            at.saturating_duration_since(drain_started).as_secs_f64()
        })
    };
    let until_last = since_start(last).max(1e-9);
    let done = if outcome.lost == 0 {
        format!(
            "all {} delivered {until_last:.1} s after the enable",
            outcome.delivered
        )
    } else {
        format!(
            "INCOMPLETE: {} of {accepted} delivered when the wait ended after {:.1} s",
            outcome.delivered,
            drain_started.elapsed().as_secs_f64()
        )
    };
    println!(
        "[drain] {how}; first delivery after {:.2} s; {done} = {:.0} deliveries/s; \
         peak RSS {peak:.1} MiB (target <= {RSS_TARGET_MIB} MiB: {}); lost: {}  duplicates: {}  \
         unexpected: {}",
        since_start(first),
        outcome.delivered as f64 / until_last,
        verdict(peak <= RSS_TARGET_MIB),
        outcome.lost,
        outcome.duplicates,
        outcome.unexpected
    );
    println!(
        "[bystander] {} of its events delivered",
        bystander.delivered()
    );
    let stopped = service.stop(STOP_GRACE).await?;
    println!("[end] service {stopped}");
    Ok(())
}

/// Polls the endpoint's health view until its `queue.{field}` is 0;
/// answers the seconds since `since`.
async fn wait_for_queue(
    bench: &Bench,
    endpoint: &str,
    field: &str,
    since: Instant,
    args: &Args,
) -> Result<f64, String> {
    let deadline = since + Duration::from_secs(args.timeout_seconds);
    loop {
        let health = bench.endpoint_health(TENANT, endpoint).await?;
        if health["queue"][field] == json!(0) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "queue.{field} still not 0 after {} s: {}",
                args.timeout_seconds, health["queue"]
            ));
        }
        tokio::time::sleep(QUEUE_POLL).await;
    }
}

const QUEUE_POLL: Duration = Duration::from_millis(250);
const BYSTANDER: &str = "bystander";
/// The bystander's pause between two publishes.
const BYSTANDER_PAUSE: Duration = Duration::from_millis(20);

/// Another tenant, with a healthy endpoint of its own.
struct Bystander {
    receiver: FastReceiver,
    sent: Arc<AtomicUsize>,
}

/// A bystander publishing until it is told to stop.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Duration>, usize)>,
}

impl Bystander {
    async fn start(bench: &Bench) -> Result<Bystander, String> {
        let receiver = start_receiver()?;
        bench.create_tenant(BYSTANDER).await?;
        bench
            .create_endpoint(BYSTANDER, json!({"url": receiver.url(0)}))
            .await?;
        Ok(Bystander {
            receiver,
            sent: Arc::default(),
        })
    }

    fn probe(&self, bench: &Bench) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (bench, sent, stopped) = (bench.clone(), Arc::clone(&self.sent), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), 0);
            while !stopped.load(Ordering::Relaxed) {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let body =
                    json!({"type": "bench.bystander", "id": format!("by-{n}"), "payload": {}});
                match bench.publish_one(BYSTANDER, &body).await {
                    Ok(took) => latencies.push(took),
                    Err(_) => failures += 1,
                }
                tokio::time::sleep(BYSTANDER_PAUSE).await;
            }
            (latencies, failures)
        });
        Probe { stop, task }
    }

    /// The bystander's events that reached its receiver.
    fn delivered(&self) -> usize {
        self.receiver
            .arrivals
            .lock()
            .map_or(0, |arrivals| arrivals.get(&0).map_or(0, HashMap::len))
    }
}

impl Probe {
    /// Stops publishing; describes the publish latencies meanwhile.
    async fn finish(self) -> Result<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        let (mut latencies, failures) = self.task.await.map_err(|e| e.to_string())?;
        latencies.sort_unstable();
        let ms = |p: f64| {
            let last = latencies.len().saturating_sub(1);
            let at = ((last as f64) * p).round() as usize;
            latencies
                .get(at.min(last))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Ok(format!(
            "meanwhile another tenant's publish: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, failures {failures}",
            latencies.len(),
            ms(0.5),
            ms(0.99),
            ms(1.0)
        ))
    }
}

/// `name value` pairs, a retry schedule as `count × delay`.
fn describe(overrides: &Value) -> String {
    let Some(fields) = overrides.as_object() else {
        return overrides.to_string();
    };
    let describe_value = |value: &Value| match value.as_array() {
        Some(delays) if delays.windows(2).all(|pair| pair[0] == pair[1]) => format!(
            "{} x {} s",
            delays.len(),
            delays.first().unwrap_or(&Value::Null)
        ),
        _ => value.to_string(),
    };
    fields
        .iter()
        .map(|(name, value)| format!("{name} {}", describe_value(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The health view's status, circuit, streak and queue, on one line.
fn health_line(health: &Value) -> String {
    format!(
        "endpoint status {}, circuit {}, consecutive failures {}, queue {}",
        health["status"]["state"],
        health["circuit"]["state"],
        health["consecutive_failures"],
        health["queue"]
    )
}
