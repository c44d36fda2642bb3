//! `--scenario endpoints`: the real service's memory and start-up time with
//! many idle endpoints (nothing is published).

use crate::client::{Bench, Failures};
use crate::process::{restart, verdict, RssMonitor, ServiceCommand, STOP_GRACE};
use crate::receiver::refused_port_besides;
use crate::{backend_name, spawn_progress, Args, RSS_SAMPLE_INTERVAL};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RSS_TARGET_MIB: f64 = 250.0;
const SERVING_TARGET: Duration = Duration::from_secs(10);
/// The memory of the idle service is the peak over this long; after a
/// restart, over this long after its start.
const SETTLE_WINDOW: Duration = Duration::from_secs(10);

fn tenant_of(n: usize, per_tenant: usize) -> String {
    format!("idle-{:04}", n / per_tenant)
}

pub async fn run(args: &Args, command: &ServiceCommand, bench: &Bench) -> Result<(), String> {
    let (total, per_tenant) = (args.endpoints, args.endpoints_per_tenant);
    let rss = Arc::new(RssMonitor::start(RSS_SAMPLE_INTERVAL));
    let (mut service, _) = command.start(bench, None).await?;
    rss.watch(&service);
    let port = refused_port_besides(command.port)?;
    let tenants = total.div_ceil(per_tenant);
    println!(
        "scenario=endpoints endpoints={total} tenants={tenants} ({per_tenant} endpoints each) \
         concurrency={} database={} (service log: {})",
        args.concurrency,
        backend_name(args),
        command.log().display()
    );
    for t in 0..tenants {
        bench
            .create_tenant(&tenant_of(t * per_tenant, per_tenant))
            .await?;
    }

    let created = Arc::new(AtomicUsize::new(0));
    let ticker = spawn_progress("create", total, Arc::clone(&rss), {
        let created = Arc::clone(&created);
        move || created.load(Ordering::Relaxed)
    });
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (bench, next, created) = (bench.clone(), Arc::clone(&next), Arc::clone(&created));
        clients.push(tokio::spawn(async move {
            let mut failures = Failures::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return failures;
                }
                let url = format!("http://127.0.0.1:{port}/idle/{n}");
                let tenant = tenant_of(n, per_tenant);
                match bench.create_endpoint(&tenant, json!({"url": url})).await {
                    Ok(_) => {
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => failures.note(error),
                }
            }
        }));
    }
    let mut failures = Failures::default();
    for client in clients {
        failures.add(client.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    let created = created.load(Ordering::Relaxed);
    let creation_peak = rss.take_peak();
    tokio::time::sleep(SETTLE_WINDOW).await;
    let idle_now = rss.current_mib().unwrap_or_default();
    let idle_peak = rss.take_peak();
    println!(
        "[create] {created} endpoints in {:.1} s = {:.0} endpoints/s (failures: {failures}); \
         peak RSS while creating {creation_peak:.1} MiB",
        elapsed.as_secs_f64(),
        created as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "[idle] RSS {idle_now:.1} MiB, peak over {} s after creation {idle_peak:.1} MiB \
         (target <= {RSS_TARGET_MIB} MiB: {})",
        SETTLE_WINDOW.as_secs(),
        verdict(idle_peak <= RSS_TARGET_MIB)
    );

    let probe = tenant_of(total.saturating_sub(1), per_tenant);
    let (mut service, restarted) = restart(
        command,
        &mut service,
        bench,
        &rss,
        Some(&probe),
        SETTLE_WINDOW,
    )
    .await?;
    let settled = rss.current_mib().unwrap_or_default();
    println!(
        "[restart] {}; serving after {:.2} s (target <= {} s: {}); RSS max over the first {} s \
         {:.1} MiB (target <= {RSS_TARGET_MIB} MiB: {}), {settled:.1} MiB at {} s",
        restarted.stopped,
        restarted.serving_after.as_secs_f64(),
        SERVING_TARGET.as_secs(),
        verdict(restarted.serving_after <= SERVING_TARGET),
        restarted.window.as_secs(),
        restarted.peak_mib,
        verdict(restarted.peak_mib <= RSS_TARGET_MIB),
        restarted.window.as_secs()
    );
    let stopped = service.stop(STOP_GRACE).await?;
    println!("[end] service {stopped}");
    Ok(())
}
