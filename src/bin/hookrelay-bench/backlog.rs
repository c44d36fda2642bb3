//! `--scenario backlog`: the real service's memory through a long outage of
//! its only endpoint (a), a restart with the whole backlog pending (b), and
//! the drain once the endpoint answers again and is enabled replaying its
//! held deliveries (c).

use crate::client::Bench;
use crate::process::{restart, verdict, RssMonitor, ServiceCommand, STOP_GRACE};
use crate::receiver::{refused_port_besides, start_counting_receiver};
use crate::{backend_name, spawn_progress, Args, RSS_SAMPLE_INTERVAL};
use serde_json::{json, Value};
use std::sync::atomic::AtomicUsize;
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
    // backlog drains through the same paging as after a restart.
    let (receiver_port, tally) = start_counting_receiver(EVENT_PREFIX, events)?;
    let health = bench.endpoint_health(TENANT, &endpoint).await?;
    let disable_started = Instant::now();
    if health["status"]["state"] != "disabled" {
        bench.disable_endpoint(TENANT, &endpoint).await?;
    }
    let disabled_in = disable_started.elapsed();
    let url = format!("http://127.0.0.1:{receiver_port}/up");
    bench
        .update_endpoint(TENANT, &endpoint, json!({"url": url}))
        .await?;
    rss.take_peak();
    let drain_started = Instant::now();
    let enabled = bench.enable_replaying_held(TENANT, &endpoint).await?;
    let how = format!(
        "disabled in {:.1} s, url PATCHed, enabled with replay=held in {:.1} s: {} replayed",
        disabled_in.as_secs_f64(),
        drain_started.elapsed().as_secs_f64(),
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
    let stopped = service.stop(STOP_GRACE).await?;
    println!("[end] service {stopped}");
    Ok(())
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
