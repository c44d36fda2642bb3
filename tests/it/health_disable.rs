//! Endpoint health (issue 3), auto-disable: after enough consecutive
//! failures for long enough, or at once on `410 Gone`, an endpoint is
//! disabled; new events are held, not sent and not dropped, also across a
//! restart; an enable replays the held ones in publish order.

use std::time::Duration;

use crate::common::{
    millis_between, parse_time, spawn_app_with_endpoint, spawn_app_with_failing_endpoint, Receiver,
    RestartableApp, TenantEndpoint, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    auto_disable_holds_new_events_and_enable_replays_them_in_order,
    auto_disable_waits_until_the_endpoint_has_been_failing_long_enough,
    gone_disables_the_endpoint_at_once,
    a_restart_while_disabled_keeps_the_endpoint_disabled,
);

async fn auto_disable_holds_new_events_and_enable_replays_them_in_order(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_endpoint(
        db,
        500,
        json!({
            "max_in_flight": 1,
            "retry_schedule": [1, 1, 1, 1, 1],
            "breaker_failures": 1000,
            "disable_after_failures": 3,
            "disable_after_seconds": 0,
        }),
    )
    .await;
    let endpoint = &ep.created;
    assert_eq!(endpoint["status"], json!("active"), "{endpoint}");
    assert_eq!(endpoint["disabled_reason"], Value::Null, "{endpoint}");

    let mut events = ep.publish_numbered(&app, "evt_first", 1).await;
    let disabled = ep.wait_for_disabled(&app).await;
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
    ep.wait_for_deliveries_of(&app, &events, "held").await;

    // Published while disabled: stored and held, not sent, not dropped.
    events.extend(ep.publish_numbered(&app, "evt_held", 5).await);
    for event in &events {
        let delivery = ep.delivery_of(&app, event).await;
        assert_eq!(delivery["state"], json!("held"), "{delivery}");
    }
    receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_secs(1),
            "nothing is attempted while disabled",
        )
        .await;
    let health = ep.health(&app).await;
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
    let listed = ep.deliveries_in(&app, "held").await;
    assert_eq!(listed.len(), 6, "{listed:?}");

    receiver.set_healthy();
    let enabled = ep.enable(&app, json!({"replay": "held"})).await;
    enabled.assert_ok_with(&[
        ("/replayed", json!(6)),
        ("/cancelled", json!(0)),
        ("/endpoint/status", json!("active")),
        ("/endpoint/disabled_reason", Value::Null),
    ]);

    receiver.wait_for_count(9, DELIVERY_TIMEOUT).await;
    ep.wait_all_deliveries(&app, 6, "succeeded").await;
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
        let delivery = ep.delivery_of(&app, event).await;
        assert_eq!(
            delivery["attempt_count"],
            json!(1),
            "a replayed delivery starts counting again: {delivery}"
        );
    }
    let health = ep.health(&app).await;
    assert_eq!(health["status"]["state"], json!("active"), "{health}");
    assert_eq!(health["consecutive_failures"], json!(0), "{health}");
    assert_eq!(health["circuit"]["state"], json!("closed"), "{health}");
    assert_eq!(health["queue"]["held"], json!(0), "{health}");

    let kinds: Vec<Value> = ep
        .alerts(&app, "")
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
    let (receiver, app, ep) = spawn_app_with_failing_endpoint(
        db,
        json!({
            "max_in_flight": 1,
            "retry_schedule": vec![1; 20],
            "disable_after_failures": 2,
            "disable_after_seconds": 3,
        }),
    )
    .await;
    ep.publish_numbered(&app, "evt_slow", 1).await;

    receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let health = ep
        .wait_for_health(&app, DELIVERY_TIMEOUT, |h| {
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

    let disabled = ep.wait_for_disabled(&app).await;
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

async fn gone_disables_the_endpoint_at_once(db: TestDb) {
    // A receiver answering 410 Gone. Global defaults: 10 failures and an
    // hour of failing before an ordinary auto-disable; 410 does not wait
    // for either.
    let (receiver, app, ep) =
        spawn_app_with_endpoint(db, 410, json!({"retry_schedule": [1, 1, 1]})).await;
    let events = ep.publish_numbered(&app, "evt_gone", 1).await;
    let disabled = ep.wait_for_disabled(&app).await;
    assert_eq!(disabled["disabled_reason"], json!("gone"), "{disabled}");
    parse_time(&disabled["disabled_at"], "disabled_at");
    receiver
        .assert_nothing_more_arrives(1, Duration::from_secs(1), "no retry after 410 Gone")
        .await;

    // Nothing is lost: the delivery that met the 410 is held for a replay.
    let held = ep.wait_for_deliveries_of(&app, &events, "held").await;
    assert_eq!(held[0]["attempt_count"], json!(1), "{}", held[0]);
    let health = ep.health(&app).await;
    assert_eq!(health["status"]["state"], json!("disabled"), "{health}");
    assert_eq!(health["status"]["reason"], json!("gone"), "{health}");
    assert_eq!(
        health["last_failure"]["status_code"],
        json!(410),
        "{health}"
    );

    let alerts = app
        .list_alerts(&ep.key, &ep.tenant, "kind=endpoint.disabled")
        .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["endpoint_id"], json!(ep.id), "{alerts:?}");
    assert_eq!(alerts[0]["status_code"], json!(410), "{alerts:?}");
}

async fn a_restart_while_disabled_keeps_the_endpoint_disabled(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let ep = TenantEndpoint::create(
        &first.app,
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
    let mut events = ep
        .publish_numbered(&first.app, "evt_restart_disabled", 1)
        .await;
    let disabled = ep.wait_for_disabled(&first.app).await;
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    let app = &second.app;
    let view = ep.view(app).await;
    assert_eq!(view["status"], json!("disabled"), "{view}");
    assert_eq!(
        view["disabled_reason"],
        json!("consecutive_failures"),
        "{view}"
    );
    assert_eq!(view["disabled_at"], disabled["disabled_at"], "{view}");
    events.extend(ep.publish_numbered(app, "evt_restart_more", 1).await);
    ep.wait_for_deliveries_of(app, &events, "held").await;
    receiver
        .assert_nothing_more_arrives(
            2,
            Duration::from_secs(1),
            "nothing is sent to a disabled endpoint after a restart",
        )
        .await;

    receiver.set_healthy();
    let enabled = ep.enable(app, json!({})).await;
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
