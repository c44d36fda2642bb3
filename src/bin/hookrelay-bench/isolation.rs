//! `--scenario isolation`: one healthy endpoint alone, beside healthy
//! neighbours, then beside a dead and a hanging endpoint.

use crate::client::{Bench, Deliveries, Load};
use crate::receiver::{refused_port, start_hanging_receiver, FastReceiver};
use crate::{backend_name, rate_label, Args};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Target for the healthy endpoint's p99 beside sick neighbours, relative to alone.
const ISOLATION_TARGET: f64 = 1.5;

/// Two runs in one service and database, each in its own tenant with its own
/// healthy endpoint: `alone` first, then `sick` (so that no retry of a sick
/// endpoint is still due while the healthy one is measured alone).
pub async fn run_isolation(
    args: &Args,
    bench: &Bench,
    receiver: &FastReceiver,
) -> Result<(), String> {
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
    let url = receiver.url(alone_endpoint);
    bench.create_endpoint("alone", json!({"url": url})).await?;
    let load = bench
        .publish("alone", "alone", args.events, args.concurrency, args.rate)
        .await?;
    load.wait_for(
        &receiver.arrivals,
        &[alone_endpoint],
        deadline(Instant::now()),
    )
    .await;
    let alone = load.deliveries(&receiver.arrivals, &[alone_endpoint])?;
    print_isolation_run("alone", &load, &alone);
    // Let the last attempt results reach the database before the next run.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The same fan-out (three deliveries an event) with healthy neighbours
    // separates the cost of fan-out from the cost of sickness.
    bench.create_tenant("neighbours").await?;
    for n in neighbour_endpoints {
        let url = receiver.url(n);
        bench
            .create_endpoint("neighbours", json!({"url": url}))
            .await?;
    }
    let url = receiver.url(neighbours_endpoint);
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
    load.wait_for(
        &receiver.arrivals,
        &[neighbours_endpoint],
        deadline(Instant::now()),
    )
    .await;
    let neighbours = load.deliveries(&receiver.arrivals, &[neighbours_endpoint])?;
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
    let url = receiver.url(sick_endpoint);
    bench.create_endpoint("sick", json!({"url": url})).await?;
    let load = bench
        .publish("sick", "sick", args.events, args.concurrency, args.rate)
        .await?;
    load.wait_for(
        &receiver.arrivals,
        &[sick_endpoint],
        deadline(Instant::now()),
    )
    .await;
    let sick = load.deliveries(&receiver.arrivals, &[sick_endpoint])?;
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
