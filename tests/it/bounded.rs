//! Bounded endpoint actors: a backlog larger than the queue window is paged
//! in from disk and delivered in order of due time, across a restart, with
//! the window never exceeded; and alerts cannot feed themselves.

use std::time::Duration;

use crate::common::{
    assert_throughout, wait_until, wait_until_steady, Receiver, RestartableApp, TestApp, TestDb,
    DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    a_backlog_larger_than_the_window_is_delivered_in_order_after_a_restart,
    every_endpoint_is_routed_after_a_restart_beyond_one_startup_page,
    an_alert_storm_between_subscribers_of_operational_events_stops,
);

const WINDOW: usize = 3;

async fn endpoint_stats(app: &TestApp, key: &str, tenant: &str, endpoint: &str) -> Value {
    app.get_json(key, &format!("/v1/tenants/{tenant}/endpoints/{endpoint}"))
        .await["stats"]
        .clone()
}

async fn a_backlog_larger_than_the_window_is_delivered_in_order_after_a_restart(db: TestDb) {
    let receiver = Receiver::start();
    // One slow attempt at a time, so the backlog builds up on disk.
    receiver.set_delay(Some(Duration::from_millis(300)));
    let with_window = |settings: &mut hookrelay::config::Settings| {
        settings.queue_window = WINDOW;
    };
    let running = RestartableApp::start(db.url(), with_window).await;
    let app = &running.app;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "max_in_flight": 1}))
        .await;
    let endpoint_id = endpoint["id"].as_str().expect("endpoint id").to_owned();
    let mut published = Vec::new();
    for n in 0..20 {
        let id = app
            .publish_event(&key, &tenant, "invoice.paid", json!({"n": n}))
            .await;
        published.push(id);
    }
    let stats = endpoint_stats(app, &key, &tenant, &endpoint_id).await;
    assert!(
        stats["queued"].as_u64().is_some_and(|q| q <= WINDOW as u64),
        "the window holds at most {WINDOW}: {stats}"
    );
    assert_eq!(stats["backlog_on_disk"], json!(true), "{stats}");
    running.stop().await;

    let restarted = RestartableApp::start(db.url(), with_window).await;
    let app = &restarted.app;
    receiver.set_delay(Some(Duration::from_millis(20)));
    let largest_window = std::cell::Cell::new(0);
    wait_until(DELIVERY_TIMEOUT, || async {
        let stats = endpoint_stats(app, &key, &tenant, &endpoint_id).await;
        let queued = stats["queued"].as_u64().unwrap_or(0);
        largest_window.set(largest_window.get().max(queued));
        let received = receiver.first_webhook_ids().len();
        if received == published.len() {
            Ok(())
        } else {
            Err(format!(
                "{received} of {} delivered: {stats}",
                published.len()
            ))
        }
    })
    .await;
    let largest_window = largest_window.get();
    assert!(
        largest_window <= WINDOW as u64,
        "the window never holds more than {WINDOW} (saw {largest_window})"
    );
    assert_eq!(
        receiver.first_webhook_ids(),
        published,
        "delivered once each, in the order they were due"
    );
    let filter = format!("endpoint_id={endpoint_id}&state=succeeded");
    wait_until(DELIVERY_TIMEOUT, || async {
        let done = app.list_deliveries(&key, &tenant, &filter).await.len();
        if done == published.len() {
            Ok(())
        } else {
            Err(format!("{done} deliveries succeeded"))
        }
    })
    .await;
    restarted.stop().await;
}

async fn an_alert_storm_between_subscribers_of_operational_events_stops(db: TestDb) {
    // Alternating answers: every other attempt fails, every other succeeds.
    let receiver = Receiver::start();
    receiver.script(&[500, 204].repeat(5000));
    let running = RestartableApp::start(db.url(), |_| {}).await;
    let app = &running.app;
    let (tenant, key) = app.create_tenant("acme").await;
    for _ in 0..3 {
        app.create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "event_types": ["invoice.*", "hookrelay.*"],
                "alert_thresholds": [1],
                "retry_schedule": [],
                "max_in_flight": 1,
            }),
        )
        .await;
    }
    // Each endpoint's lease is taken by a lease round after its creation;
    // until then its deliveries wait (on PostgreSQL, up to a round), a
    // pause the settling below would take for the storm's end.
    wait_until(Duration::from_secs(10), || async {
        db.count_sql("SELECT count(*) AS n FROM endpoint_leases") >= 3
    })
    .await;
    for n in 0..3 {
        app.publish_event(&key, &tenant, "invoice.paid", json!({"n": n}))
            .await;
    }
    // Whatever the first failures raise, it must settle within 8 s: the
    // counts stop changing (for a second, so by 9 s), then nothing new comes.
    let (alerts, requests) =
        wait_until_steady(Duration::from_secs(9), Duration::from_secs(1), || async {
            (
                app.list_alerts(&key, &tenant, "").await.len(),
                receiver.count(),
            )
        })
        .await;
    assert_throughout(
        Duration::from_secs(4),
        "no new alerts and no new requests once settled",
        || async {
            let alerts_now = app.list_alerts(&key, &tenant, "").await.len();
            let requests_now = receiver.count();
            if alerts_now == alerts && requests_now == requests {
                Ok(())
            } else {
                Err(format!(
                    "{alerts_now} alerts (settled at {alerts}), {requests_now} requests (settled at {requests})"
                ))
            }
        },
    )
    .await;
    assert!(
        alerts <= 10,
        "three endpoints raise a bounded number of alerts: {alerts}"
    );
    running.stop().await;
}

/// Start-up reads endpoints 1,000 at a time: the ones past the first page
/// must get deliveries after a restart too.
async fn every_endpoint_is_routed_after_a_restart_beyond_one_startup_page(db: TestDb) {
    const FIRST: usize = 600;
    const SECOND: usize = 401;
    let receiver = Receiver::start();
    let running = RestartableApp::start(db.url(), |_| {}).await;
    let app = &running.app;
    let mut tenants = Vec::new();
    for (name, count) in [("acme", FIRST), ("globex", SECOND)] {
        let (tenant, key) = app.create_tenant(name).await;
        for _ in 0..count {
            app.create_endpoint(&key, &tenant, json!({"url": receiver.url()}))
                .await;
        }
        tenants.push((tenant, key, count));
    }
    running.stop().await;

    let restarted = RestartableApp::start(db.url(), |_| {}).await;
    for (tenant, key, count) in &tenants {
        let (_, deliveries) = restarted
            .app
            .publish_accepted(key, tenant, &json!({"type": "invoice.paid", "payload": {}}))
            .await;
        assert_eq!(deliveries, *count as u64, "tenant {tenant}");
    }
    restarted.stop().await;
}
