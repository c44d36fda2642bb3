//! `--scenario fanout`: F healthy endpoints subscribed to every event.

use crate::client::Bench;
use crate::receiver::FastReceiver;
use crate::{backend_name, rate_label, Args};
use serde_json::json;
use std::cell::Cell;
use std::time::{Duration, Instant};

pub async fn run_fanout(args: &Args, bench: &Bench, receiver: &FastReceiver) -> Result<(), String> {
    bench.create_tenant("bench").await?;
    for n in 0..args.fanout {
        let url = receiver.url(n);
        bench.create_endpoint("bench", json!({"url": url})).await?;
    }

    let scraping = Scraping::every(args.scrape_every_ms);
    let run = async {
        let load = bench
            .publish("bench", "bench", args.events, args.concurrency, args.rate)
            .await?;
        let endpoints: Vec<usize> = (0..args.fanout).collect();
        let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
        load.wait_for(&receiver.arrivals, &endpoints, deadline)
            .await;
        Ok::<_, String>((load, endpoints))
    };
    let ((load, endpoints), scrapes) = scraping.during(bench, run).await?;
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
    if let Some(every) = scraping.0 {
        println!(
            "metrics: {} scrapes, one every {} ms, last {} bytes",
            scrapes.count,
            every.as_millis(),
            scrapes.last_bytes
        );
    }
    Ok(())
}

/// Scrapes of `/metrics` made while the load ran.
#[derive(Default)]
struct Scrapes {
    count: usize,
    last_bytes: usize,
}

/// How often to scrape while the load runs, if at all.
struct Scraping(Option<Duration>);

impl Scraping {
    fn every(millis: u64) -> Scraping {
        Scraping((millis > 0).then(|| Duration::from_millis(millis)))
    }

    /// Runs `load`, scraping beside it until it ends.
    async fn during<T>(
        &self,
        bench: &Bench,
        load: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<(T, Scrapes), String> {
        let Some(every) = self.0 else {
            return Ok((load.await?, Scrapes::default()));
        };
        let count = Cell::new(0);
        let last_bytes = Cell::new(0);
        let scraper = async {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                match bench.scrape_metrics().await {
                    Ok(bytes) => last_bytes.set(bytes),
                    Err(failed) => break failed,
                }
                count.set(count.get() + 1);
            }
        };
        let scrapes = || Scrapes {
            count: count.get(),
            last_bytes: last_bytes.get(),
        };
        tokio::select! {
            done = load => Ok((done?, scrapes())),
            failed = scraper => Err(format!("scraping /metrics: {failed}")),
        }
    }
}
