//! Endpoint health (issue 3), the circuit breaker: it opens after N
//! consecutive failures, lets one probe through per cool-down and doubles
//! the cool-down up to its maximum, consumes no retries while open, and
//! keeps its state across a restart.

use std::time::Duration;

use crate::common::{
    circuit_is, millis_between, parse_time, spawn_app_with_failing_endpoint, wall_time,
    ReceivedRequest, Receiver, RestartableApp, TenantEndpoint, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    breaker_opens_after_n_failures_probes_once_per_cool_down_and_doubles_it,
    waiting_deliveries_keep_their_attempt_count_while_the_breaker_is_open,
    a_restart_while_the_breaker_is_open_keeps_it_open,
);

/// Waits until the circuit re-opened after the failed `probe`; answers the
/// health view and how long after the probe the next one is due (ms).
async fn reopened_after(
    app: &TestApp,
    ep: &TenantEndpoint,
    probe: &ReceivedRequest,
) -> (Value, i64) {
    let health = ep
        .wait_for_health(app, DELIVERY_TIMEOUT, |h| {
            if h["circuit"]["state"] != json!("open") {
                return Err("circuit to re-open after the failed probe".into());
            }
            let next = parse_time(&h["circuit"]["next_probe_at"], "next_probe_at");
            if next > wall_time(probe) + chrono::Duration::milliseconds(500) {
                Ok(())
            } else {
                Err("next_probe_at to move past the probe".into())
            }
        })
        .await;
    let wait = (parse_time(&health["circuit"]["next_probe_at"], "next_probe_at")
        - wall_time(probe))
    .num_milliseconds();
    (health, wait)
}

async fn breaker_opens_after_n_failures_probes_once_per_cool_down_and_doubles_it(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_failing_endpoint(
        db,
        json!({
            // Three deliveries can be in flight at once, so a half-open
            // breaker that let more than one probe through would show.
            "max_in_flight": 4,
            "retry_schedule": vec![1; 20],
            "breaker_failures": 3,
            "breaker_cooldown_seconds": 1,
            "breaker_max_cooldown_seconds": 2,
            "disable_after_seconds": 0,
        }),
    )
    .await;
    ep.publish_numbered(&app, "evt_breaker", 3).await;

    // Three concurrent failures open the breaker.
    let opened = ep.wait_for_circuit(&app, "open").await;
    assert!(
        opened["consecutive_failures"].as_i64() >= Some(3),
        "{opened}"
    );
    let cool_down = millis_between(
        &opened["circuit"]["opened_at"],
        &opened["circuit"]["next_probe_at"],
        "circuit times",
    );
    assert!(
        (800..=1700).contains(&cool_down),
        "first cool-down must be about 1 s (breaker_cooldown_seconds), next_probe_at - opened_at = {cool_down} ms: {opened}"
    );

    // Probe 1 (fails): the cool-down doubles to 2 s.
    let requests = receiver.wait_for_count(4, DELIVERY_TIMEOUT).await;
    let (after_probe1, wait1) = reopened_after(&app, &ep, &requests[3]).await;
    assert!(
        (1600..=3400).contains(&wait1),
        "after one failed probe the cool-down must double to 2 s, next probe {wait1} ms after the probe: {after_probe1}"
    );

    // Probe 2 (fails): doubling would give 4 s, the maximum is 2 s.
    let requests = receiver.wait_for_count(5, DELIVERY_TIMEOUT).await;
    let (after_probe2, wait2) = reopened_after(&app, &ep, &requests[4]).await;
    assert!(
        (1600..=3400).contains(&wait2),
        "the cool-down is capped at breaker_max_cooldown_seconds (2 s), next probe {wait2} ms after the probe: {after_probe2}"
    );
    // The receiver recovers before probe 3 but answers it slowly: while that
    // probe is out, nothing else may go, not even a newly published event.
    receiver.set_status(200);
    receiver.set_delay(Some(Duration::from_millis(2500)));
    receiver.wait_for_count(6, DELIVERY_TIMEOUT).await;
    let half_open = ep
        .wait_for_health(&app, Duration::from_secs(5), circuit_is("half_open"))
        .await;
    ep.publish_numbered(&app, "evt_breaker_late", 1).await;
    receiver
        .assert_nothing_more_arrives(
            6,
            Duration::from_millis(500),
            &format!("one probe at a time while half-open, whatever else is due: {half_open}"),
        )
        .await;
    receiver.set_delay(None);

    let deliveries = ep.wait_all_deliveries(&app, 4, "succeeded").await;
    let requests = receiver.requests();
    let gaps: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        requests.len() >= 6,
        "3 failures, 2 failed probes, 1 successful probe at least: {gaps:?}"
    );
    // The first three attempts (concurrent) open the breaker; nothing else
    // goes out until the cool-down is over, then one probe at a time.
    assert!(
        gaps[1] < Duration::from_millis(700),
        "the first three attempts go out together: gaps {gaps:?}"
    );
    assert!(
        gaps[2] >= Duration::from_millis(800),
        "no request while open: the first probe comes a cool-down (1 s) after the third failure; gaps {gaps:?}"
    );
    assert!(
        gaps[3] >= Duration::from_millis(1600),
        "the second probe comes a doubled cool-down (2 s) after the first; gaps {gaps:?}"
    );
    assert!(
        gaps[4] >= Duration::from_millis(1600),
        "the third probe comes 2 s after the second; gaps {gaps:?}"
    );
    // Success closes the breaker and the three other deliveries drain.
    assert_eq!(
        requests.len(),
        9,
        "3 failures + 3 probes + the 3 remaining deliveries; gaps {gaps:?}"
    );
    let attempts: i64 = deliveries.iter().map(|(_, _, a)| a).sum();
    assert_eq!(
        attempts, 9,
        "every request is one recorded attempt: {deliveries:?}"
    );
    let closed = ep.wait_for_circuit(&app, "closed").await;
    assert_eq!(closed["consecutive_failures"], json!(0), "{closed}");
    assert_eq!(closed["failing_since"], Value::Null, "{closed}");
    assert_eq!(closed["circuit"]["next_probe_at"], Value::Null, "{closed}");
    receiver
        .assert_nothing_more_arrives(9, Duration::from_millis(500), "nothing is sent again")
        .await;
}

async fn waiting_deliveries_keep_their_attempt_count_while_the_breaker_is_open(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_failing_endpoint(
        db,
        json!({
            "max_in_flight": 1,
            // Four attempts per delivery, each retry due at once: a
            // breaker that consumed retries while open would use them up.
            "retry_schedule": [1, 1, 1],
            "timeout_seconds": 10,
            "breaker_failures": 2,
            "breaker_cooldown_seconds": 3,
            "breaker_max_cooldown_seconds": 3,
        }),
    )
    .await;
    ep.publish_numbered(&app, "evt_wait", 3).await;

    ep.wait_for_circuit(&app, "open").await;
    receiver
        .assert_nothing_more_arrives(
            2,
            Duration::from_millis(1500),
            "two failures open the breaker, then nothing is sent while open",
        )
        .await;
    let deliveries = ep.deliveries(&app).await;
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|(_, s, _)| s == "pending"),
        "waiting deliveries stay pending while open: {deliveries:?}"
    );
    let attempts: i64 = deliveries.iter().map(|(_, _, a)| a).sum();
    assert_eq!(
        attempts, 2,
        "only real attempts count, the wait consumes no retries: {deliveries:?}"
    );
    let health = ep.health(&app).await;
    assert_eq!(health["queue"]["pending"], json!(3), "{health}");
    assert_eq!(health["consecutive_failures"], json!(2), "{health}");

    // The receiver recovers but answers slowly: the probe is visibly alone
    // and the breaker half-open while it runs.
    receiver.set_status(200);
    receiver.set_delay(Some(Duration::from_millis(1500)));
    receiver.wait_for_count(3, DELIVERY_TIMEOUT).await;
    let half_open = ep
        .wait_for_health(&app, Duration::from_secs(5), circuit_is("half_open"))
        .await;
    assert_eq!(
        receiver.count(),
        3,
        "exactly one probe while half-open: {half_open}"
    );
    receiver.set_delay(None);

    let deliveries = ep.wait_all_deliveries(&app, 3, "succeeded").await;
    let attempts: i64 = deliveries.iter().map(|(_, _, a)| a).sum();
    assert_eq!(
        attempts, 5,
        "two failures and three successes: {deliveries:?}"
    );
    assert!(
        deliveries.iter().all(|(_, _, a)| (1..=3).contains(a)),
        "{deliveries:?}"
    );
    assert_eq!(receiver.count(), 5);
    let health = ep.wait_for_circuit(&app, "closed").await;
    assert_eq!(health["consecutive_failures"], json!(0), "{health}");
    assert_eq!(health["queue"]["pending"], json!(0), "{health}");
}

async fn a_restart_while_the_breaker_is_open_keeps_it_open(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let ep = TenantEndpoint::create(
        &first.app,
        json!({
            "url": receiver.url(),
            "max_in_flight": 1,
            "retry_schedule": vec![1; 10],
            "breaker_failures": 2,
            "breaker_cooldown_seconds": 6,
            "breaker_max_cooldown_seconds": 60,
            "alert_thresholds": [1000],
            "disable_after_failures": 1000,
        }),
    )
    .await;
    ep.publish_numbered(&first.app, "evt_restart_open", 3).await;
    let before = ep.wait_for_circuit(&first.app, "open").await;
    let next_probe_at = parse_time(&before["circuit"]["next_probe_at"], "next_probe_at");
    assert_eq!(receiver.count(), 2, "{before}");
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    let app = &second.app;
    let after = ep.health(app).await;
    assert_eq!(
        after["circuit"]["state"],
        json!("open"),
        "the breaker state survives the restart: {after}"
    );
    let restored = parse_time(&after["circuit"]["next_probe_at"], "next_probe_at");
    assert!(
        (restored - next_probe_at).num_milliseconds().abs() <= 1000,
        "next_probe_at survives the restart: before {before}, after {after}"
    );
    assert_eq!(after["consecutive_failures"], json!(2), "{after}");
    assert_eq!(after["queue"]["pending"], json!(3), "{after}");

    // No request before the stored probe time, then exactly one probe.
    let until_probe = (next_probe_at - chrono::Utc::now()).num_milliseconds() - 500;
    receiver
        .assert_nothing_more_arrives(
            2,
            Duration::from_millis(until_probe.max(0) as u64),
            "a restart must not send anything to an endpoint whose breaker is open",
        )
        .await;
    let requests = receiver.wait_for_count(3, DELIVERY_TIMEOUT).await;
    let probe_at = wall_time(&requests[2]);
    assert!(
        probe_at >= next_probe_at - chrono::Duration::milliseconds(500),
        "probe at {probe_at}, stored next_probe_at {next_probe_at}"
    );
    receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_secs(1),
            "one probe, which failed and re-opened",
        )
        .await;
    second.stop().await;
    drop(db);
}
