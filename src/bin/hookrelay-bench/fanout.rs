//! `--scenario fanout`: F healthy endpoints subscribed to every event.

use crate::client::Bench;
use crate::receiver::FastReceiver;
use crate::{backend_name, rate_label, Args};
use serde_json::json;
use std::time::{Duration, Instant};

pub async fn run_fanout(args: &Args, bench: &Bench, receiver: &FastReceiver) -> Result<(), String> {
    bench.create_tenant("bench").await?;
    for n in 0..args.fanout {
        let url = receiver.url(n);
        bench.create_endpoint("bench", json!({"url": url})).await?;
    }

    let load = bench
        .publish("bench", "bench", args.events, args.concurrency, args.rate)
        .await?;
    let endpoints: Vec<usize> = (0..args.fanout).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    load.wait_for(&receiver.arrivals, &endpoints, deadline)
        .await;
    let expected = load.accepted() * args.fanout;
    let result = load.deliveries(&receiver.arrivals, &endpoints)?;
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
