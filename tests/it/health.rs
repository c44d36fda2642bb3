//! Endpoint health (issue 3): the circuit breaker, the consecutive-failure
//! counter, auto-disable that holds new events, re-enable with or without
//! replay, `410 Gone`, manual disable, state kept across a restart,
//! isolation of a healthy endpoint from sick neighbours, the health views
//! and the validation of the new settings.

use std::time::{Duration, Instant};

use crate::common::{
    parse_time, refused_url, spawn_app, spawn_app_with, try_build_app, wait_until, wall_time,
    Receiver, RestartableApp, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

backend_tests!(
    breaker_opens_after_n_failures_probes_once_per_cool_down_and_doubles_it,
    waiting_deliveries_keep_their_attempt_count_while_the_breaker_is_open,
    auto_disable_holds_new_events_and_enable_replays_them_in_order,
    auto_disable_waits_until_the_endpoint_has_been_failing_long_enough,
    manual_disable_holds_pending_deliveries_and_replay_none_cancels_them,
    gone_disables_the_endpoint_at_once,
    a_restart_while_the_breaker_is_open_keeps_it_open,
    a_restart_while_disabled_keeps_the_endpoint_disabled,
    dead_and_hanging_endpoints_do_not_delay_a_healthy_one,
    health_view_reports_status_circuit_queue_and_history,
    tenant_health_lists_endpoints_worst_first,
    invalid_health_settings_are_refused_at_start_up_and_on_the_api,
    publishing_a_hookrelay_event_type_is_refused,
    health_routes_are_tenant_isolated,
    an_enable_right_after_a_patch_replays_and_keeps_delivering,
    enabling_an_active_endpoint_does_not_repeat_its_alerts,
    an_override_set_to_null_goes_back_to_the_global_setting,
);

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// Milliseconds from `a` to `b` (RFC 3339 values).
fn millis_between(a: &Value, b: &Value, context: &str) -> i64 {
    (parse_time(b, context) - parse_time(a, context)).num_milliseconds()
}

/// The circuit state of a health view or of a tenant summary row (where the
/// contract does not say whether `circuit` is the state or an object).
fn circuit_state(row: &Value) -> String {
    match &row["circuit"] {
        Value::String(state) => state.clone(),
        other => other["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no circuit state in {row}"))
            .to_string(),
    }
}

fn circuit_is(state: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    move |health: &Value| {
        if health["circuit"]["state"] == json!(state) {
            Ok(())
        } else {
            Err(format!("circuit to be {state}"))
        }
    }
}

/// Publishes `n` events of type `invoice.paid` with ids `{prefix}_{i}`;
/// returns the ids in publish order.
async fn publish_numbered(
    app: &TestApp,
    key: &str,
    tenant: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}_{i}");
        let (got, deliveries) = app
            .publish_accepted(
                key,
                tenant,
                &json!({"id": id, "type": "invoice.paid", "payload": {"n": i}}),
            )
            .await;
        assert_eq!(got, id);
        assert_eq!(deliveries, 1, "event {id} matches exactly one endpoint");
        ids.push(id);
    }
    ids
}

/// Waits until every delivery of `endpoint` is in `state`; returns them.
async fn wait_all_deliveries(
    app: &TestApp,
    key: &str,
    tenant: &str,
    endpoint: &str,
    count: usize,
    state: &str,
) -> Vec<(String, String, i64)> {
    wait_until(DELIVERY_TIMEOUT, || async {
        let deliveries = app.delivery_states(key, tenant, endpoint).await;
        if deliveries.len() == count && deliveries.iter().all(|(_, s, _)| s == state) {
            Ok(deliveries)
        } else {
            Err(format!(
                "{count} deliveries of {endpoint} to be {state}, have {deliveries:?}"
            ))
        }
    })
    .await
}

/// Endpoint settings that keep the breaker, alerts and auto-disable out of
/// a scenario that is about something else.
/// Waits until the circuit re-opened after the failed `probe`; answers the
/// health view and how long after the probe the next one is due (ms).
async fn reopened_after(
    app: &TestApp,
    key: &str,
    tenant: &str,
    ep: &str,
    probe: &crate::common::ReceivedRequest,
) -> (Value, i64) {
    let health = app
        .wait_for_health(key, tenant, ep, DELIVERY_TIMEOUT, |h| {
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

fn quiet() -> Value {
    json!({
        "breaker_failures": 1000,
        "alert_thresholds": [1000],
        "disable_after_failures": 1000,
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object").clone() {
        base[k] = v;
    }
    base
}

// ---------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------

async fn breaker_opens_after_n_failures_probes_once_per_cool_down_and_doubles_it(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                // Three deliveries can be in flight at once, so a half-open
                // breaker that let more than one probe through would show.
                "max_in_flight": 4,
                "retry_schedule": vec![1; 20],
                "breaker_failures": 3,
                "breaker_cooldown_seconds": 1,
                "breaker_max_cooldown_seconds": 2,
                "alert_thresholds": [1000],
                "disable_after_failures": 1000,
                "disable_after_seconds": 0,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    publish_numbered(&app, &key, &tenant, "evt_breaker", 3).await;

    // Three concurrent failures open the breaker.
    let opened = app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, circuit_is("open"))
        .await;
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
    let (after_probe1, wait1) = reopened_after(&app, &key, &tenant, &ep, &requests[3]).await;
    assert!(
        (1600..=3400).contains(&wait1),
        "after one failed probe the cool-down must double to 2 s, next probe {wait1} ms after the probe: {after_probe1}"
    );

    // Probe 2 (fails): doubling would give 4 s, the maximum is 2 s.
    let requests = receiver.wait_for_count(5, DELIVERY_TIMEOUT).await;
    let (after_probe2, wait2) = reopened_after(&app, &key, &tenant, &ep, &requests[4]).await;
    assert!(
        (1600..=3400).contains(&wait2),
        "the cool-down is capped at breaker_max_cooldown_seconds (2 s), next probe {wait2} ms after the probe: {after_probe2}"
    );
    // The receiver recovers before probe 3 but answers it slowly: while that
    // probe is out, nothing else may go, not even a newly published event.
    receiver.set_status(200);
    receiver.set_delay(Some(Duration::from_millis(2500)));
    receiver.wait_for_count(6, DELIVERY_TIMEOUT).await;
    let half_open = app
        .wait_for_health(
            &key,
            &tenant,
            &ep,
            Duration::from_secs(5),
            circuit_is("half_open"),
        )
        .await;
    publish_numbered(&app, &key, &tenant, "evt_breaker_late", 1).await;
    receiver
        .assert_nothing_more_arrives(
            6,
            Duration::from_millis(500),
            &format!("one probe at a time while half-open, whatever else is due: {half_open}"),
        )
        .await;
    receiver.set_delay(None);

    let deliveries = wait_all_deliveries(&app, &key, &tenant, &ep, 4, "succeeded").await;
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
    let closed = app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, circuit_is("closed"))
        .await;
    assert_eq!(closed["consecutive_failures"], json!(0), "{closed}");
    assert_eq!(closed["failing_since"], Value::Null, "{closed}");
    assert_eq!(closed["circuit"]["next_probe_at"], Value::Null, "{closed}");
    receiver
        .assert_nothing_more_arrives(9, Duration::from_millis(500), "nothing is sent again")
        .await;
}

async fn waiting_deliveries_keep_their_attempt_count_while_the_breaker_is_open(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "max_in_flight": 1,
                // Four attempts per delivery, each retry due at once: a
                // breaker that consumed retries while open would use them up.
                "retry_schedule": [1, 1, 1],
                "timeout_seconds": 10,
                "breaker_failures": 2,
                "breaker_cooldown_seconds": 3,
                "breaker_max_cooldown_seconds": 3,
                "alert_thresholds": [1000],
                "disable_after_failures": 1000,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    publish_numbered(&app, &key, &tenant, "evt_wait", 3).await;

    app.wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, circuit_is("open"))
        .await;
    receiver
        .assert_nothing_more_arrives(
            2,
            Duration::from_millis(1500),
            "two failures open the breaker, then nothing is sent while open",
        )
        .await;
    let deliveries = app.delivery_states(&key, &tenant, &ep).await;
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
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(health["queue"]["pending"], json!(3), "{health}");
    assert_eq!(health["consecutive_failures"], json!(2), "{health}");

    // The receiver recovers but answers slowly: the probe is visibly alone
    // and the breaker half-open while it runs.
    receiver.set_status(200);
    receiver.set_delay(Some(Duration::from_millis(1500)));
    receiver.wait_for_count(3, DELIVERY_TIMEOUT).await;
    let half_open = app
        .wait_for_health(
            &key,
            &tenant,
            &ep,
            Duration::from_secs(5),
            circuit_is("half_open"),
        )
        .await;
    assert_eq!(
        receiver.count(),
        3,
        "exactly one probe while half-open: {half_open}"
    );
    receiver.set_delay(None);

    let deliveries = wait_all_deliveries(&app, &key, &tenant, &ep, 3, "succeeded").await;
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
    let health = app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, circuit_is("closed"))
        .await;
    assert_eq!(health["consecutive_failures"], json!(0), "{health}");
    assert_eq!(health["queue"]["pending"], json!(0), "{health}");
}

// ---------------------------------------------------------------------------
// Auto-disable, held deliveries, enable
// ---------------------------------------------------------------------------

async fn auto_disable_holds_new_events_and_enable_replays_them_in_order(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "max_in_flight": 1,
                "retry_schedule": [1, 1, 1, 1, 1],
                "breaker_failures": 1000,
                "disable_after_failures": 3,
                "disable_after_seconds": 0,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    assert_eq!(endpoint["status"], json!("active"), "{endpoint}");
    assert_eq!(endpoint["disabled_reason"], Value::Null, "{endpoint}");

    let mut events = publish_numbered(&app, &key, &tenant, "evt_first", 1).await;
    let disabled = app.wait_for_disabled(&key, &tenant, &ep).await;
    assert_eq!(
        disabled["disabled_reason"],
        json!("consecutive_failures"),
        "{disabled}"
    );
    parse_time(&disabled["disabled_at"], "disabled_at");
    receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_millis(500),
            "disabled at the third consecutive failure, nothing sent after",
        )
        .await;
    let first = app.single_delivery_id(&key, &tenant, &events[0]).await;
    app.wait_for_delivery_state(&key, &tenant, &first, "held", DELIVERY_TIMEOUT)
        .await;

    // Published while disabled: stored and held, not sent, not dropped.
    events.extend(publish_numbered(&app, &key, &tenant, "evt_held", 5).await);
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        let delivery = app.get_delivery(&key, &tenant, &delivery).await;
        assert_eq!(delivery["state"], json!("held"), "{delivery}");
    }
    receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_secs(1),
            "nothing is attempted while disabled",
        )
        .await;
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(health["status"]["state"], json!("disabled"), "{health}");
    assert_eq!(
        health["status"]["reason"],
        json!("consecutive_failures"),
        "{health}"
    );
    assert_eq!(
        parse_time(&health["status"]["since"], "status.since"),
        parse_time(&disabled["disabled_at"], "disabled_at"),
        "{health}"
    );
    assert_eq!(health["queue"]["held"], json!(6), "{health}");
    assert_eq!(health["queue"]["pending"], json!(0), "{health}");
    let listed = app
        .list_deliveries(&key, &tenant, &format!("endpoint_id={ep}&state=held"))
        .await;
    assert_eq!(listed.len(), 6, "{listed:?}");

    receiver.set_healthy();
    let enabled = app
        .enable_endpoint(&key, &tenant, &ep, &json!({"replay": "held"}))
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["replayed"], json!(6), "{}", enabled.body);
    assert_eq!(enabled.body["cancelled"], json!(0), "{}", enabled.body);
    assert_eq!(
        enabled.body["endpoint"]["status"],
        json!("active"),
        "{}",
        enabled.body
    );
    assert_eq!(
        enabled.body["endpoint"]["disabled_reason"],
        Value::Null,
        "{}",
        enabled.body
    );

    receiver.wait_for_count(9, DELIVERY_TIMEOUT).await;
    wait_all_deliveries(&app, &key, &tenant, &ep, 6, "succeeded").await;
    receiver
        .assert_nothing_more_arrives(
            9,
            Duration::from_millis(500),
            "each held event arrives once",
        )
        .await;
    let ids = receiver.webhook_ids();
    assert_eq!(ids.len(), 9, "each held event arrives once: {ids:?}");
    assert_eq!(
        &ids[3..],
        &events[..],
        "held events are replayed in publish order"
    );
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        let delivery = app.get_delivery(&key, &tenant, &delivery).await;
        assert_eq!(
            delivery["attempt_count"],
            json!(1),
            "a replayed delivery starts counting again: {delivery}"
        );
    }
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(health["status"]["state"], json!("active"), "{health}");
    assert_eq!(health["consecutive_failures"], json!(0), "{health}");
    assert_eq!(health["circuit"]["state"], json!("closed"), "{health}");
    assert_eq!(health["queue"]["held"], json!(0), "{health}");

    let kinds: Vec<Value> = app
        .list_alerts(&key, &tenant, &format!("endpoint_id={ep}"))
        .await
        .iter()
        .map(|a| a["kind"].clone())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == json!("endpoint.disabled"))
            .count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == json!("endpoint.enabled"))
            .count(),
        1,
        "{kinds:?}"
    );
}

async fn auto_disable_waits_until_the_endpoint_has_been_failing_long_enough(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "max_in_flight": 1,
                "retry_schedule": vec![1; 20],
                "breaker_failures": 1000,
                "alert_thresholds": [1000],
                "disable_after_failures": 2,
                "disable_after_seconds": 3,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    publish_numbered(&app, &key, &tenant, "evt_slow", 1).await;

    receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let health = app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, |h| {
            if h["consecutive_failures"].as_i64() >= Some(2) {
                Ok(())
            } else {
                Err("two failures recorded".into())
            }
        })
        .await;
    let failing_since = health["failing_since"].clone();
    parse_time(&failing_since, "failing_since");
    if millis_between(
        &failing_since,
        &json!(chrono::Utc::now().to_rfc3339()),
        "now",
    ) < 2500
    {
        assert_eq!(
            health["status"]["state"],
            json!("active"),
            "two failures are not enough before disable_after_seconds: {health}"
        );
    }

    let disabled = app.wait_for_disabled(&key, &tenant, &ep).await;
    assert_eq!(
        disabled["disabled_reason"],
        json!("consecutive_failures"),
        "{disabled}"
    );
    let failing_for = millis_between(&failing_since, &disabled["disabled_at"], "disabled_at");
    assert!(
        failing_for >= 2900,
        "disabled only after failing for disable_after_seconds (3 s), was {failing_for} ms"
    );
    assert!(
        receiver.count() >= 3,
        "more than disable_after_failures failures were needed: {}",
        receiver.count()
    );
}

async fn manual_disable_holds_pending_deliveries_and_replay_none_cancels_them(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            with(
                quiet(),
                json!({"url": receiver.url(), "retry_schedule": [3600]}),
            ),
        )
        .await;
    let ep = id_of(&endpoint);
    let mut events = publish_numbered(&app, &key, &tenant, "evt_manual", 1).await;
    let first = app.single_delivery_id(&key, &tenant, &events[0]).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        let d = app.get_delivery(&key, &tenant, &first).await;
        d["attempt_count"] == json!(1)
    })
    .await;

    let disabled = app.disable_endpoint(&key, &tenant, &ep).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(
        disabled.body["status"],
        json!("disabled"),
        "{}",
        disabled.body
    );
    assert_eq!(
        disabled.body["disabled_reason"],
        json!("manual"),
        "{}",
        disabled.body
    );
    let disabled_at = disabled.body["disabled_at"].clone();
    parse_time(&disabled_at, "disabled_at");
    // The pending delivery waiting for its retry is held now.
    let held = app
        .wait_for_delivery_state(&key, &tenant, &first, "held", DELIVERY_TIMEOUT)
        .await;
    assert_eq!(held["attempt_count"], json!(1), "{held}");

    // Time passes, so that a second disable that stamped disabled_at again
    // would show.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let again = app.disable_endpoint(&key, &tenant, &ep).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["status"], json!("disabled"), "{}", again.body);
    assert_eq!(
        again.body["disabled_reason"],
        json!("manual"),
        "{}",
        again.body
    );
    assert_eq!(
        again.body["disabled_at"], disabled_at,
        "disabling again changes nothing"
    );

    events.extend(publish_numbered(&app, &key, &tenant, "evt_manual_held", 2).await);
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        app.wait_for_delivery_state(&key, &tenant, &delivery, "held", DELIVERY_TIMEOUT)
            .await;
    }

    app.enable_endpoint(&key, &tenant, &ep, &json!({"replay": "everything"}))
        .await
        .assert_invalid_field("replay", "enable with an unknown replay value");
    let view = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(
        view["status"],
        json!("disabled"),
        "a refused enable changes nothing: {view}"
    );

    receiver.set_healthy();
    let enabled = app
        .enable_endpoint(&key, &tenant, &ep, &json!({"replay": "none"}))
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["replayed"], json!(0), "{}", enabled.body);
    assert_eq!(enabled.body["cancelled"], json!(3), "{}", enabled.body);
    assert_eq!(
        enabled.body["endpoint"]["status"],
        json!("active"),
        "{}",
        enabled.body
    );
    // The answer counts them; the move itself follows in the background.
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        app.wait_for_delivery_state(&key, &tenant, &delivery, "cancelled", DELIVERY_TIMEOUT)
            .await;
    }
    receiver
        .assert_nothing_more_arrives(
            1,
            Duration::from_millis(1500),
            "cancelled deliveries are never sent",
        )
        .await;
    let cancelled = app
        .list_deliveries(&key, &tenant, &format!("endpoint_id={ep}&state=cancelled"))
        .await;
    assert_eq!(
        cancelled.len(),
        3,
        "cancelled deliveries stay visible: {cancelled:?}"
    );

    // Active again: new events go out.
    let after = publish_numbered(&app, &key, &tenant, "evt_after_enable", 1).await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_eq!(requests[1].header("webhook-id"), Some(after[0].as_str()));
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(health["queue"]["held"], json!(0), "{health}");
}

async fn gone_disables_the_endpoint_at_once(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_gone();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    // Global defaults: 10 failures and an hour of failing before an
    // ordinary auto-disable; 410 does not wait for either.
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "retry_schedule": [1, 1, 1]}),
        )
        .await;
    let ep = id_of(&endpoint);
    let events = publish_numbered(&app, &key, &tenant, "evt_gone", 1).await;
    let disabled = app.wait_for_disabled(&key, &tenant, &ep).await;
    assert_eq!(disabled["disabled_reason"], json!("gone"), "{disabled}");
    parse_time(&disabled["disabled_at"], "disabled_at");
    receiver
        .assert_nothing_more_arrives(1, Duration::from_secs(1), "no retry after 410 Gone")
        .await;

    // Nothing is lost: the delivery that met the 410 is held for a replay.
    let delivery = app.single_delivery_id(&key, &tenant, &events[0]).await;
    let delivery = app
        .wait_for_delivery_state(&key, &tenant, &delivery, "held", DELIVERY_TIMEOUT)
        .await;
    assert_eq!(delivery["attempt_count"], json!(1), "{delivery}");
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(health["status"]["state"], json!("disabled"), "{health}");
    assert_eq!(health["status"]["reason"], json!("gone"), "{health}");
    assert_eq!(
        health["last_failure"]["status_code"],
        json!(410),
        "{health}"
    );

    let alerts = app
        .list_alerts(&key, &tenant, "kind=endpoint.disabled")
        .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["endpoint_id"], json!(ep), "{alerts:?}");
    assert_eq!(alerts[0]["status_code"], json!(410), "{alerts:?}");
}

// ---------------------------------------------------------------------------
// Restarts
// ---------------------------------------------------------------------------

async fn a_restart_while_the_breaker_is_open_keeps_it_open(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let endpoint = first
        .app
        .create_endpoint(
            &key,
            &tenant,
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
    let ep = id_of(&endpoint);
    publish_numbered(&first.app, &key, &tenant, "evt_restart_open", 3).await;
    let before = first
        .app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, circuit_is("open"))
        .await;
    let next_probe_at = parse_time(&before["circuit"]["next_probe_at"], "next_probe_at");
    assert_eq!(receiver.count(), 2, "{before}");
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    let app = &second.app;
    let after = app.endpoint_health(&key, &tenant, &ep).await;
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

async fn a_restart_while_disabled_keeps_the_endpoint_disabled(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let endpoint = first
        .app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "max_in_flight": 1,
                "retry_schedule": [1, 1, 1, 1],
                "breaker_failures": 1000,
                "disable_after_failures": 2,
                "disable_after_seconds": 0,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    let mut events = publish_numbered(&first.app, &key, &tenant, "evt_restart_disabled", 1).await;
    let disabled = first.app.wait_for_disabled(&key, &tenant, &ep).await;
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    let app = &second.app;
    let view = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(view["status"], json!("disabled"), "{view}");
    assert_eq!(
        view["disabled_reason"],
        json!("consecutive_failures"),
        "{view}"
    );
    assert_eq!(view["disabled_at"], disabled["disabled_at"], "{view}");
    events.extend(publish_numbered(app, &key, &tenant, "evt_restart_more", 1).await);
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        app.wait_for_delivery_state(&key, &tenant, &delivery, "held", DELIVERY_TIMEOUT)
            .await;
    }
    receiver
        .assert_nothing_more_arrives(
            2,
            Duration::from_secs(1),
            "nothing is sent to a disabled endpoint after a restart",
        )
        .await;

    receiver.set_healthy();
    let enabled = app.enable_endpoint(&key, &tenant, &ep, &json!({})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(
        enabled.body["replayed"],
        json!(2),
        "replay defaults to held: {}",
        enabled.body
    );
    receiver.wait_for_count(4, DELIVERY_TIMEOUT).await;
    assert_eq!(&receiver.webhook_ids()[2..], &events[..]);
    second.stop().await;
    drop(db);
}

// ---------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------

async fn dead_and_hanging_endpoints_do_not_delay_a_healthy_one(db: TestDb) {
    const EVENTS: usize = 20;
    const HANG_TIMEOUT_SECONDS: u64 = 5;
    let healthy = Receiver::start();
    let hanging = Receiver::start();
    hanging.set_hanging(Duration::from_secs(120));
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let dead_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": refused_url(), "retry_schedule": vec![1; 10]}),
        )
        .await;
    let hanging_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": hanging.url(),
                "timeout_seconds": HANG_TIMEOUT_SECONDS,
                "retry_schedule": vec![1; 10],
            }),
        )
        .await;
    let healthy_ep = app
        .create_endpoint(&key, &tenant, json!({"url": healthy.url()}))
        .await;

    let started = Instant::now();
    let mut published = Vec::new();
    for n in 0..EVENTS {
        let id = format!("evt_iso_{n}");
        let (_, deliveries) = app
            .publish_accepted(
                &key,
                &tenant,
                &json!({"id": id, "type": "invoice.paid", "payload": {"n": n}}),
            )
            .await;
        assert_eq!(deliveries, 3);
        published.push((id, Instant::now()));
    }
    // Serial processing behind the hanging endpoint would take at least
    // EVENTS x 5 s; even one attempt's timeout would show.
    let requests = healthy
        .wait_for_count(EVENTS, Duration::from_secs(15))
        .await;
    let all_in = started.elapsed();
    for (id, accepted_at) in &published {
        let request = requests
            .iter()
            .find(|r| r.header("webhook-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("healthy endpoint never got {id}"));
        let latency = request.at.saturating_duration_since(*accepted_at);
        assert!(
            latency < Duration::from_secs(HANG_TIMEOUT_SECONDS - 1),
            "{id} reached the healthy endpoint {latency:?} after it was accepted: the sick neighbours held it up"
        );
    }
    assert!(
        all_in < Duration::from_secs(HANG_TIMEOUT_SECONDS * 2),
        "the healthy endpoint needed {all_in:?} for {EVENTS} events"
    );
    let deliveries = wait_all_deliveries(
        &app,
        &key,
        &tenant,
        &id_of(&healthy_ep),
        EVENTS,
        "succeeded",
    )
    .await;
    assert!(
        deliveries.iter().all(|(_, _, a)| *a == 1),
        "each healthy delivery succeeded at its first attempt: {deliveries:?}"
    );

    // The neighbours really were sick.
    wait_until(DELIVERY_TIMEOUT, || async {
        let health = app.endpoint_health(&key, &tenant, &id_of(&dead_ep)).await;
        if health["last_failure"]["error_kind"] == json!("connect") {
            Ok(())
        } else {
            Err(format!("dead endpoint to fail with connect: {health}"))
        }
    })
    .await;
    wait_until(DELIVERY_TIMEOUT, || async {
        let health = app
            .endpoint_health(&key, &tenant, &id_of(&hanging_ep))
            .await;
        if health["last_failure"]["error_kind"] == json!("timeout") {
            Ok(())
        } else {
            Err(format!("hanging endpoint to time out: {health}"))
        }
    })
    .await;
    assert!(hanging.count() >= 1);
    assert_eq!(
        healthy.count(),
        EVENTS,
        "no duplicates to the healthy endpoint"
    );
}

// ---------------------------------------------------------------------------
// Health views
// ---------------------------------------------------------------------------

async fn health_view_reports_status_circuit_queue_and_history(db: TestDb) {
    let receiver = Receiver::start();
    let idle_receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "retry_schedule": [3600], "event_types": ["invoice.*"]}),
        )
        .await;
    let ep = id_of(&endpoint);
    let idle = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": idle_receiver.url(), "event_types": ["nothing.*"]}),
        )
        .await;

    // A new endpoint: nothing to report yet.
    let fresh = app.endpoint_health(&key, &tenant, &id_of(&idle)).await;
    assert_eq!(fresh["endpoint_id"], idle["id"], "{fresh}");
    assert_eq!(fresh["url"], json!(idle_receiver.url()), "{fresh}");
    assert_eq!(
        fresh["status"],
        json!({"state": "active", "reason": null, "since": null}),
        "{fresh}"
    );
    assert_eq!(
        fresh["circuit"],
        json!({"state": "closed", "opened_at": null, "next_probe_at": null}),
        "{fresh}"
    );
    assert_eq!(fresh["consecutive_failures"], json!(0), "{fresh}");
    assert_eq!(fresh["failing_since"], Value::Null, "{fresh}");
    assert_eq!(
        fresh["queue"],
        json!({"pending": 0, "held": 0, "in_flight": 0, "waiting_for_slot": 0}),
        "{fresh}"
    );
    for window in ["last_hour", "last_day"] {
        assert_eq!(fresh[window]["attempts"], json!(0), "{fresh}");
        assert_eq!(fresh[window]["success_rate"], Value::Null, "{fresh}");
        assert_eq!(fresh[window]["latency_p50_ms"], Value::Null, "{fresh}");
    }
    assert_eq!(fresh["last_success_at"], Value::Null, "{fresh}");
    assert_eq!(fresh["last_failure"], Value::Null, "{fresh}");
    assert_eq!(fresh["recent_attempts"], json!([]), "{fresh}");

    // Two successes, then a failure that waits an hour for its retry.
    let ok = publish_numbered(&app, &key, &tenant, "evt_view_ok", 2).await;
    for event in &ok {
        let d = app.single_delivery_id(&key, &tenant, event).await;
        app.wait_for_delivery_state(&key, &tenant, &d, "succeeded", DELIVERY_TIMEOUT)
            .await;
    }
    receiver.set_status(500);
    let failing = publish_numbered(&app, &key, &tenant, "evt_view_fail", 1).await;
    let failed_delivery = app.single_delivery_id(&key, &tenant, &failing[0]).await;
    let health = app
        .wait_for_health(&key, &tenant, &ep, DELIVERY_TIMEOUT, |h| {
            if h["consecutive_failures"] == json!(1) && h["last_hour"]["attempts"] == json!(3) {
                Ok(())
            } else {
                Err("one failure after two successes".into())
            }
        })
        .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);

    assert_eq!(health["endpoint_id"], json!(ep), "{health}");
    assert_eq!(health["url"], json!(receiver.url()), "{health}");
    assert_eq!(health["status"]["state"], json!("active"), "{health}");
    assert_eq!(health["circuit"]["state"], json!("closed"), "{health}");
    let failing_since = parse_time(&health["failing_since"], "failing_since");
    assert!(
        (failing_since - wall_time(&requests[2]))
            .num_milliseconds()
            .abs()
            < 2000,
        "failing_since is the time of the first failure of the streak: {health}"
    );
    assert_eq!(
        health["queue"],
        json!({"pending": 1, "held": 0, "in_flight": 0, "waiting_for_slot": 0}),
        "{health}"
    );
    for window in ["last_hour", "last_day"] {
        let w = &health[window];
        assert_eq!(w["attempts"], json!(3), "{window}: {health}");
        assert_eq!(w["succeeded"], json!(2), "{window}: {health}");
        assert_eq!(w["failed"], json!(1), "{window}: {health}");
        let rate = w["success_rate"]
            .as_f64()
            .unwrap_or_else(|| panic!("{window}.success_rate: {health}"));
        assert!(
            (rate - 2.0 / 3.0).abs() < 0.01,
            "{window}.success_rate {rate}"
        );
    }
    let p50 = health["last_hour"]["latency_p50_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_p50_ms: {health}"));
    let p95 = health["last_hour"]["latency_p95_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_p95_ms: {health}"));
    assert!(p50 >= 0.0 && p50 <= p95 && p95 < 30_000.0, "{health}");
    let last_success = parse_time(&health["last_success_at"], "last_success_at");
    assert!(
        last_success <= failing_since + chrono::Duration::milliseconds(1),
        "{health}"
    );
    let last_failure = &health["last_failure"];
    parse_time(&last_failure["at"], "last_failure.at");
    assert_eq!(last_failure["status_code"], json!(500), "{health}");
    assert_eq!(last_failure["error_kind"], json!("http_status"), "{health}");
    assert!(
        last_failure.get("error_message").is_some(),
        "last_failure.error_message present (may be null): {health}"
    );

    let recent = health["recent_attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("recent_attempts: {health}"));
    assert_eq!(recent.len(), 3, "{health}");
    assert_eq!(
        recent[0]["delivery_id"],
        json!(failed_delivery),
        "newest first: {health}"
    );
    assert_eq!(recent[0]["status_code"], json!(500), "{health}");
    assert_eq!(recent[0]["error_kind"], json!("http_status"), "{health}");
    assert_eq!(recent[1]["status_code"], json!(200), "{health}");
    assert_eq!(recent[2]["status_code"], json!(200), "{health}");
    for attempt in recent {
        for field in [
            "delivery_id",
            "attempt",
            "started_at",
            "duration_ms",
            "status_code",
            "error_kind",
            "error_message",
        ] {
            assert!(
                attempt.get(field).is_some(),
                "recent attempt without {field}: {health}"
            );
        }
        assert_eq!(attempt["attempt"], json!(1), "{health}");
    }
    let times: Vec<_> = recent
        .iter()
        .map(|a| parse_time(&a["started_at"], "started_at"))
        .collect();
    assert!(
        times[0] >= times[1] && times[1] >= times[2],
        "newest first: {health}"
    );
}

async fn tenant_health_lists_endpoints_worst_first(db: TestDb) {
    let receiver = Receiver::start();
    let failing_receiver = Receiver::start();
    failing_receiver.set_status(500);
    let mixed_receiver = Receiver::start();
    mixed_receiver.script(&[500]);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;

    let mk = |url: String, types: &str, extra: Value| {
        with(
            quiet(),
            with(json!({"url": url, "event_types": [types]}), extra),
        )
    };
    // Created best first, so that creation order cannot pass for the ranking.
    let healthy = app
        .create_endpoint(&key, &tenant, mk(receiver.url(), "healthy.*", json!({})))
        .await;
    let mixed = app
        .create_endpoint(
            &key,
            &tenant,
            mk(
                mixed_receiver.url(),
                "mixed.*",
                json!({"retry_schedule": [1]}),
            ),
        )
        .await;
    let failing_once = app
        .create_endpoint(
            &key,
            &tenant,
            mk(
                failing_receiver.url(),
                "once.*",
                json!({"retry_schedule": [3600]}),
            ),
        )
        .await;
    let failing_twice = app
        .create_endpoint(
            &key,
            &tenant,
            mk(
                failing_receiver.url(),
                "twice.*",
                json!({"retry_schedule": [1, 3600]}),
            ),
        )
        .await;
    let open = app
        .create_endpoint(
            &key,
            &tenant,
            mk(
                failing_receiver.url(),
                "open.*",
                json!({
                    "retry_schedule": [3600],
                    "breaker_failures": 1,
                    "breaker_cooldown_seconds": 600,
                    "breaker_max_cooldown_seconds": 600,
                }),
            ),
        )
        .await;
    let disabled = app
        .create_endpoint(&key, &tenant, mk(receiver.url(), "disabled.*", json!({})))
        .await;

    for prefix in ["healthy", "mixed", "once", "twice", "open"] {
        app.publish_accepted(
            &key,
            &tenant,
            &json!({"type": format!("{prefix}.happened"), "payload": {}}),
        )
        .await;
    }
    let disabled_answer = app.disable_endpoint(&key, &tenant, &id_of(&disabled)).await;
    assert_eq!(
        disabled_answer.status,
        StatusCode::OK,
        "{}",
        disabled_answer.body
    );

    let expected: Vec<String> = [
        &disabled,
        &open,
        &failing_twice,
        &failing_once,
        &mixed,
        &healthy,
    ]
    .iter()
    .map(|e| id_of(e))
    .collect();
    let rows = wait_until(DELIVERY_TIMEOUT, || async {
        let rows = app.tenant_health(&key, &tenant).await;
        let order: Vec<String> = rows
            .iter()
            .map(|r| r["endpoint_id"].as_str().unwrap_or_default().to_string())
            .collect();
        let row = |endpoint: &Value| {
            rows.iter()
                .find(|r| r["endpoint_id"] == endpoint["id"])
                .cloned()
                .unwrap_or(Value::Null)
        };
        let rate = |endpoint: &Value| row(endpoint)["last_hour_success_rate"].as_f64();
        let failures = |endpoint: &Value| row(endpoint)["consecutive_failures"].as_i64();
        let settled = rate(&healthy) == Some(1.0)
            && rate(&mixed).is_some_and(|x| (x - 0.5).abs() < 0.01)
            && failures(&failing_twice) == Some(2)
            && failures(&failing_once) == Some(1)
            && row(&open)["circuit"] != Value::Null
            && circuit_state(&row(&open)) == "open";
        if settled && order == expected {
            Ok(rows)
        } else {
            Err(format!(
                "tenant health worst first (disabled, open, 2 failures, 1 failure, 50 %, healthy) = {expected:?}, got {order:?}: {rows:?}"
            ))
        }
    })
    .await;
    for row in &rows {
        for field in [
            "endpoint_id",
            "url",
            "status",
            "disabled_reason",
            "circuit",
            "consecutive_failures",
            "failing_since",
            "pending",
            "held",
            "last_hour_success_rate",
        ] {
            assert!(
                row.get(field).is_some(),
                "summary row without {field}: {row}"
            );
        }
    }
    assert_eq!(rows[0]["status"], json!("disabled"), "{:?}", rows[0]);
    assert_eq!(rows[0]["disabled_reason"], json!("manual"), "{:?}", rows[0]);
    assert_eq!(circuit_state(&rows[1]), "open", "{:?}", rows[1]);
    assert_eq!(rows[1]["status"], json!("active"), "{:?}", rows[1]);
    assert_eq!(rows[1]["pending"], json!(1), "{:?}", rows[1]);
    assert_eq!(rows[5]["consecutive_failures"], json!(0), "{:?}", rows[5]);
    assert_eq!(rows[5]["failing_since"], Value::Null, "{:?}", rows[5]);
    assert_eq!(circuit_state(&rows[5]), "closed", "{:?}", rows[5]);
}

// ---------------------------------------------------------------------------
// Settings and validation
// ---------------------------------------------------------------------------

async fn invalid_health_settings_are_refused_at_start_up_and_on_the_api(db: TestDb) {
    type Configure = fn(&mut hookrelay::config::Settings);
    let invalid: [(&str, Configure); 6] = [
        ("alert_thresholds", |s| s.alert_thresholds = vec![0, 5]),
        ("alert_thresholds", |s| s.alert_thresholds = vec![5, 3]),
        ("alert_thresholds", |s| s.alert_thresholds = vec![3, 3, 10]),
        ("breaker_cooldown_seconds", |s| {
            s.breaker_cooldown_seconds = 700;
            s.breaker_max_cooldown_seconds = 600;
        }),
        ("breaker_failures", |s| s.breaker_failures = 0),
        ("disable_after_failures", |s| s.disable_after_failures = 0),
    ];
    for (field, configure) in invalid {
        let error = try_build_app(db.url(), configure)
            .await
            .err()
            .unwrap_or_else(|| panic!("Application::build must refuse an invalid {field}"));
        assert!(
            error.contains("Settings"),
            "invalid {field}: expected StartupError::Settings, got {error}"
        );
        let normalized = error.to_ascii_lowercase().replace('-', "_");
        let named = normalized.contains(field)
            || (field == "breaker_cooldown_seconds"
                && normalized.contains("breaker_max_cooldown_seconds"));
        assert!(named, "the start-up error must name {field}: {error}");
    }
    // Edge values that are valid.
    try_build_app(db.url(), |s| {
        s.alert_thresholds = vec![1];
        s.breaker_cooldown_seconds = 600;
        s.breaker_max_cooldown_seconds = 600;
        s.disable_after_seconds = 0;
    })
    .await
    .unwrap_or_else(|e| panic!("valid edge settings refused: {e}"));

    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let path = format!("/v1/tenants/{tenant}/endpoints");
    let url = receiver.url();
    let invalid_endpoints = [
        (
            json!({"url": url, "alert_thresholds": [0]}),
            "alert_thresholds",
        ),
        (
            json!({"url": url, "alert_thresholds": [5, 3]}),
            "alert_thresholds",
        ),
        (
            json!({"url": url, "alert_thresholds": [3, 3]}),
            "alert_thresholds",
        ),
        (
            json!({"url": url, "breaker_failures": 0}),
            "breaker_failures",
        ),
        (
            json!({"url": url, "disable_after_failures": 0}),
            "disable_after_failures",
        ),
        // Checked against the global maximum (600 s) and cool-down (30 s).
        (
            json!({"url": url, "breaker_cooldown_seconds": 601}),
            "breaker_cooldown_seconds",
        ),
        (
            json!({"url": url, "breaker_max_cooldown_seconds": 10}),
            "breaker_max_cooldown_seconds",
        ),
        (
            json!({"url": url, "breaker_failures": -1}),
            "breaker_failures",
        ),
        (
            json!({"url": url, "alert_thresholds": "3,5"}),
            "alert_thresholds",
        ),
    ];
    for (body, field) in &invalid_endpoints {
        app.post(&key, &path, body)
            .await
            .assert_invalid_field(field, &format!("POST {path} {body}"));
    }
    let endpoints = app.get_json(&key, &path).await;
    assert_eq!(endpoints["data"], json!([]), "nothing created: {endpoints}");

    let created = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": url, "breaker_failures": 7, "alert_thresholds": [1, 4]}),
        )
        .await;
    let ep = id_of(&created);
    assert_eq!(created["status"], json!("active"), "{created}");
    assert_eq!(created["disabled_at"], Value::Null, "{created}");
    assert_eq!(created["disabled_reason"], Value::Null, "{created}");
    assert_eq!(created["breaker_failures"], json!(7), "{created}");
    assert_eq!(created["alert_thresholds"], json!([1, 4]), "{created}");
    assert_eq!(
        created["overrides"],
        json!({
            "breaker_failures": 7,
            "breaker_cooldown_seconds": null,
            "breaker_max_cooldown_seconds": null,
            "alert_thresholds": [1, 4],
            "disable_after_failures": null,
            "disable_after_seconds": null,
        }),
        "{created}"
    );
    for field in [
        "breaker_cooldown_seconds",
        "breaker_max_cooldown_seconds",
        "disable_after_failures",
        "disable_after_seconds",
    ] {
        assert_eq!(
            created[field],
            Value::Null,
            "{field} not overridden: {created}"
        );
    }

    let endpoint_path = format!("{path}/{ep}");
    app.patch(&key, &endpoint_path, &json!({"alert_thresholds": [4, 1]}))
        .await
        .assert_invalid_field("alert_thresholds", "PATCH unsorted thresholds");
    app.patch(
        &key,
        &endpoint_path,
        &json!({"breaker_max_cooldown_seconds": 20}),
    )
    .await
    .assert_invalid_field(
        "breaker_max_cooldown_seconds",
        "PATCH a maximum below the global cool-down (30 s)",
    );
    app.patch(
        &key,
        &endpoint_path,
        &json!({"breaker_failures": 0, "description": "changed"}),
    )
    .await
    .assert_invalid_field("breaker_failures", "PATCH breaker_failures 0");
    let unchanged = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(unchanged["alert_thresholds"], json!([1, 4]), "{unchanged}");
    assert_eq!(unchanged["breaker_failures"], json!(7), "{unchanged}");
    assert_eq!(
        unchanged["breaker_max_cooldown_seconds"],
        Value::Null,
        "{unchanged}"
    );
    assert_ne!(unchanged["description"], json!("changed"), "{unchanged}");

    let patched = app
        .patch(
            &key,
            &endpoint_path,
            &json!({"breaker_cooldown_seconds": 5, "breaker_max_cooldown_seconds": 20, "disable_after_seconds": 0}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["breaker_cooldown_seconds"],
        json!(5),
        "{}",
        patched.body
    );
    assert_eq!(
        patched.body["overrides"]["breaker_max_cooldown_seconds"],
        json!(20),
        "{}",
        patched.body
    );
    assert_eq!(
        patched.body["disable_after_seconds"],
        json!(0),
        "{}",
        patched.body
    );
    assert_eq!(
        patched.body["breaker_failures"],
        json!(7),
        "{}",
        patched.body
    );

    // With the per-endpoint maximum of 20 s, a 25 s cool-down is too long.
    app.patch(
        &key,
        &endpoint_path,
        &json!({"breaker_cooldown_seconds": 25}),
    )
    .await
    .assert_invalid_field(
        "breaker_cooldown_seconds",
        "cool-down above the endpoint's maximum",
    );
}

async fn publishing_a_hookrelay_event_type_is_refused(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app_with(db, |_| {}).await;
    let (tenant, key) = app.create_tenant("acme").await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "event_types": ["hookrelay.endpoint.*"]}),
    )
    .await;
    for event_type in [
        "hookrelay.endpoint.failing",
        "hookrelay.endpoint.disabled",
        "hookrelay.anything",
    ] {
        app.publish(&key, &tenant, &json!({"type": event_type, "payload": {}}))
            .await
            .assert_invalid_field("type", &format!("publishing {event_type}"));
    }
    let deliveries = app.list_deliveries(&key, &tenant, "").await;
    assert!(deliveries.is_empty(), "{deliveries:?}");
    // Only the reserved prefix is refused.
    let (_, n) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "hookrelayed.thing", "payload": {}}),
        )
        .await;
    assert_eq!(n, 1);
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    receiver
        .assert_nothing_more_arrives(
            1,
            Duration::from_millis(500),
            "the accepted event, and no operational event after it",
        )
        .await;
    assert!(crate::common::operational_events(&receiver.requests()).is_empty());
}

async fn health_routes_are_tenant_isolated(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (_, acme_key) = app.create_tenant("acme").await;
    let (_, globex_key) = app.create_tenant("globex").await;
    let acme_ep = app
        .create_endpoint(
            &acme_key,
            "acme",
            with(quiet(), json!({"url": receiver.url()})),
        )
        .await;
    let globex_ep = app
        .create_endpoint(
            &globex_key,
            "globex",
            json!({"url": receiver.url(), "alert_thresholds": [1], "retry_schedule": [3600]}),
        )
        .await;
    let (a, b) = (id_of(&acme_ep), id_of(&globex_ep));
    app.publish_accepted(
        &globex_key,
        "globex",
        &json!({"type": "x.y", "payload": {}}),
    )
    .await;
    wait_until(DELIVERY_TIMEOUT, || async {
        app.list_alerts(&globex_key, "globex", "").await.len() == 1
    })
    .await;

    let empty = Some(b"{}".to_vec());
    let foreign: Vec<(Method, String, Option<Vec<u8>>)> = vec![
        (
            Method::GET,
            format!("/v1/tenants/globex/endpoints/{b}/health"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/tenants/globex/endpoints/{b}/disable"),
            empty.clone(),
        ),
        (
            Method::POST,
            format!("/v1/tenants/globex/endpoints/{b}/enable"),
            empty.clone(),
        ),
        (Method::GET, "/v1/tenants/globex/health".into(), None),
        (Method::GET, "/v1/tenants/globex/alerts".into(), None),
        (
            Method::GET,
            format!("/v1/tenants/acme/endpoints/{b}/health"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/tenants/acme/endpoints/{b}/disable"),
            empty.clone(),
        ),
        (
            Method::POST,
            format!("/v1/tenants/acme/endpoints/{b}/enable"),
            empty.clone(),
        ),
    ];
    for (method, path, body) in &foreign {
        let response = app
            .send(method.clone(), path, Some(&acme_key), &[], body.clone())
            .await;
        response.assert_problem(404, &format!("acme's key on {method} {path}"));
        let response = app
            .send(method.clone(), path, None, &[], body.clone())
            .await;
        response.assert_problem(401, &format!("{method} {path} without a key"));
    }
    let view = app.get_endpoint(&globex_key, "globex", &b).await;
    assert_eq!(
        view["status"],
        json!("active"),
        "acme could not disable it: {view}"
    );

    // acme's own views show only acme's endpoints and alerts.
    let rows = app.tenant_health(&acme_key, "acme").await;
    let ids: Vec<&Value> = rows.iter().map(|r| &r["endpoint_id"]).collect();
    assert_eq!(ids, vec![&json!(a)], "{rows:?}");
    assert_eq!(
        app.list_alerts(&acme_key, "acme", "").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        app.list_alerts(&acme_key, "acme", &format!("endpoint_id={b}"))
            .await,
        Vec::<Value>::new()
    );
    app.endpoint_health(&acme_key, "acme", &a).await;

    // The admin key opens every tenant's health routes.
    let admin = app.admin_key.clone();
    app.endpoint_health(&admin, "globex", &b).await;
    assert_eq!(app.tenant_health(&admin, "globex").await.len(), 1);
    assert_eq!(app.list_alerts(&admin, "globex", "").await.len(), 1);
    let disabled = app.disable_endpoint(&admin, "globex", &b).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let enabled = app
        .enable_endpoint(&admin, "globex", &b, &json!({"replay": "none"}))
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    app.get(&admin, "/v1/tenants/nobody/health")
        .await
        .assert_problem(404, "admin on an unknown tenant's health");
    app.get(&admin, "/v1/tenants/acme/endpoints/ep_missing/health")
        .await
        .assert_problem(404, "health of an unknown endpoint");
}

// ---------------------------------------------------------------------------
// Status changes racing a restart of the endpoint's actor
// ---------------------------------------------------------------------------

/// A PATCH restarts the endpoint's actor, which reloads its saved state; an
/// enable sent at once must not be undone by that reload.
async fn an_enable_right_after_a_patch_replays_and_keeps_delivering(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "max_in_flight": 1}),
        )
        .await;
    let ep = id_of(&endpoint);
    let disabled = app.disable_endpoint(&key, &tenant, &ep).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let mut events = publish_numbered(&app, &key, &tenant, "evt_held", 3).await;

    for round in 0..3 {
        let patched = app
            .patch(
                &key,
                &format!("/v1/tenants/{tenant}/endpoints/{ep}"),
                &json!({"description": format!("fixed, round {round}")}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
        if round == 0 {
            let enabled = app
                .enable_endpoint(&key, &tenant, &ep, &json!({"replay": "held"}))
                .await;
            assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
            assert_eq!(enabled.body["replayed"], json!(3), "{}", enabled.body);
        }
    }
    events.extend(publish_numbered(&app, &key, &tenant, "evt_after", 3).await);

    receiver
        .wait_for_count(events.len(), DELIVERY_TIMEOUT)
        .await;
    let arrived = receiver.webhook_ids();
    assert_eq!(
        arrived, events,
        "every event once, held ones first, in order"
    );
    let view = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(view["status"], json!("active"), "{view}");
    wait_until(DELIVERY_TIMEOUT, || async {
        let states = app.delivery_states(&key, &tenant, &ep).await;
        if states.len() == 6 && states.iter().all(|(_, state, _)| state == "succeeded") {
            Ok(())
        } else {
            Err(format!(
                "every delivery succeeded, none left held: {states:?}"
            ))
        }
    })
    .await;
}

/// Enabling an endpoint that is already active is no reset: its failure
/// streak goes on and a threshold already alerted is not alerted again.
async fn enabling_an_active_endpoint_does_not_repeat_its_alerts(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "retry_schedule": [1, 1, 1, 1, 1, 1, 1, 1],
                "breaker_failures": 1000,
                "alert_thresholds": [2],
                "disable_after_failures": 1000,
            }),
        )
        .await;
    let ep = id_of(&endpoint);
    publish_numbered(&app, &key, &tenant, "evt_streak", 1).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        let alerts = app
            .list_alerts(&key, &tenant, "kind=endpoint.failing")
            .await;
        if alerts.len() == 1 {
            Ok(())
        } else {
            Err(format!("one failing alert: {alerts:?}"))
        }
    })
    .await;

    let enabled = app.enable_endpoint(&key, &tenant, &ep, &json!({})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["replayed"], json!(0), "{}", enabled.body);
    publish_numbered(&app, &key, &tenant, "evt_streak_more", 1).await;
    // Both deliveries spend their whole schedule: 18 failures in one streak.
    wait_until(DELIVERY_TIMEOUT, || async {
        let health = app.endpoint_health(&key, &tenant, &ep).await;
        if health["consecutive_failures"].as_u64() >= Some(18) {
            Ok(())
        } else {
            Err(format!("18 consecutive failures: {health}"))
        }
    })
    .await;
    let alerts = app.list_alerts(&key, &tenant, "").await;
    let kinds: Vec<&str> = alerts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["endpoint.failing"], "{alerts:?}");
}

async fn an_override_set_to_null_goes_back_to_the_global_setting(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "breaker_failures": 3, "alert_thresholds": [1, 2]}),
        )
        .await;
    let ep = id_of(&endpoint);
    assert_eq!(
        endpoint["overrides"]["breaker_failures"],
        json!(3),
        "{endpoint}"
    );
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");

    // Absent keeps the override; null removes it.
    let patched = app.patch(&key, &path, &json!({"description": "x"})).await;
    assert_eq!(
        patched.body["breaker_failures"],
        json!(3),
        "{}",
        patched.body
    );
    let patched = app
        .patch(&key, &path, &json!({"breaker_failures": null}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["breaker_failures"],
        Value::Null,
        "{}",
        patched.body
    );
    assert_eq!(
        patched.body["overrides"]["alert_thresholds"],
        json!([1, 2]),
        "{}",
        patched.body
    );
    let view = app.get_endpoint(&key, &tenant, &ep).await;
    assert_eq!(view["overrides"]["breaker_failures"], Value::Null, "{view}");
    let health = app.endpoint_health(&key, &tenant, &ep).await;
    assert_eq!(
        health["limits"],
        json!({
            "breaker_failures": 5,
            "breaker_cooldown_seconds": 30,
            "breaker_max_cooldown_seconds": 600,
            "alert_thresholds": [1, 2],
            "disable_after_failures": 10,
            "disable_after_seconds": 3600,
        }),
        "the global settings where no override remains: {health}"
    );

    let refused = app
        .patch(&key, &path, &json!({"alert_thresholds": [0]}))
        .await;
    refused.assert_invalid_field("alert_thresholds", "a zero threshold");
}
