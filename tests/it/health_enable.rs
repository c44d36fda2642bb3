//! Endpoint health (issue 3), the disable and enable routes used by hand:
//! a manual disable holds what is pending, an enable replays the held
//! deliveries or cancels them, holds against a restart of the endpoint's
//! actor, and is no reset of an endpoint that was active.

use std::time::Duration;

use crate::common::{
    parse_time, spawn_app_with_endpoint, spawn_app_with_failing_endpoint, wait_until, TestDb,
    DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(
    manual_disable_holds_pending_deliveries_and_replay_none_cancels_them,
    an_enable_right_after_a_patch_replays_and_keeps_delivering,
    enabling_an_active_endpoint_does_not_repeat_its_alerts,
);

async fn manual_disable_holds_pending_deliveries_and_replay_none_cancels_them(db: TestDb) {
    let (receiver, app, ep) =
        spawn_app_with_failing_endpoint(db, json!({"retry_schedule": [3600]})).await;
    let mut events = ep.publish_numbered(&app, "evt_manual", 1).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        ep.delivery_of(&app, &events[0]).await["attempt_count"] == json!(1)
    })
    .await;

    let disabled = ep.disable(&app).await;
    disabled.assert_ok_with(&[
        ("/status", json!("disabled")),
        ("/disabled_reason", json!("manual")),
    ]);
    let disabled_at = disabled.body["disabled_at"].clone();
    parse_time(&disabled_at, "disabled_at");
    // The pending delivery waiting for its retry is held now.
    let held = ep.wait_for_deliveries_of(&app, &events, "held").await;
    assert_eq!(held[0]["attempt_count"], json!(1), "{}", held[0]);

    // Time passes, so that a second disable that stamped disabled_at again
    // would show.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let again = ep.disable(&app).await;
    again.assert_ok_with(&[
        ("/status", json!("disabled")),
        ("/disabled_reason", json!("manual")),
    ]);
    assert_eq!(
        again.body["disabled_at"], disabled_at,
        "disabling again changes nothing"
    );

    events.extend(ep.publish_numbered(&app, "evt_manual_held", 2).await);
    ep.wait_for_deliveries_of(&app, &events, "held").await;

    ep.enable(&app, json!({"replay": "everything"}))
        .await
        .assert_invalid_field("replay", "enable with an unknown replay value");
    let view = ep.view(&app).await;
    assert_eq!(
        view["status"],
        json!("disabled"),
        "a refused enable changes nothing: {view}"
    );

    receiver.set_healthy();
    let enabled = ep.enable(&app, json!({"replay": "none"})).await;
    enabled.assert_ok_with(&[
        ("/replayed", json!(0)),
        ("/cancelled", json!(3)),
        ("/endpoint/status", json!("active")),
    ]);
    // The answer counts them; the move itself follows in the background.
    ep.wait_for_deliveries_of(&app, &events, "cancelled").await;
    receiver
        .assert_nothing_more_arrives(
            1,
            Duration::from_millis(1500),
            "cancelled deliveries are never sent",
        )
        .await;
    let cancelled = ep.deliveries_in(&app, "cancelled").await;
    assert_eq!(
        cancelled.len(),
        3,
        "cancelled deliveries stay visible: {cancelled:?}"
    );

    // Active again: new events go out.
    let after = ep.publish_numbered(&app, "evt_after_enable", 1).await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_eq!(requests[1].header("webhook-id"), Some(after[0].as_str()));
    let health = ep.health(&app).await;
    assert_eq!(health["queue"]["held"], json!(0), "{health}");
}

/// A PATCH restarts the endpoint's actor, which reloads its saved state; an
/// enable sent at once must not be undone by that reload.
async fn an_enable_right_after_a_patch_replays_and_keeps_delivering(db: TestDb) {
    let (receiver, app, ep) = spawn_app_with_endpoint(db, 200, json!({"max_in_flight": 1})).await;
    let disabled = ep.disable(&app).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let mut events = ep.publish_numbered(&app, "evt_held", 3).await;

    for round in 0..3 {
        let patched = ep
            .patch(
                &app,
                json!({"description": format!("fixed, round {round}")}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
        if round == 0 {
            let enabled = ep.enable(&app, json!({"replay": "held"})).await;
            enabled.assert_ok_with(&[("/replayed", json!(3))]);
        }
    }
    events.extend(ep.publish_numbered(&app, "evt_after", 3).await);

    receiver
        .wait_for_count(events.len(), DELIVERY_TIMEOUT)
        .await;
    let arrived = receiver.webhook_ids();
    assert_eq!(
        arrived, events,
        "every event once, held ones first, in order"
    );
    let view = ep.view(&app).await;
    assert_eq!(view["status"], json!("active"), "{view}");
    // Every delivery succeeded, none is left held.
    ep.wait_all_deliveries(&app, 6, "succeeded").await;
}

/// Enabling an endpoint that is already active is no reset: its failure
/// streak goes on and a threshold already alerted is not alerted again.
async fn enabling_an_active_endpoint_does_not_repeat_its_alerts(db: TestDb) {
    let (_receiver, app, ep) = spawn_app_with_endpoint(
        db,
        500,
        json!({
            "retry_schedule": [1, 1, 1, 1, 1, 1, 1, 1],
            "breaker_failures": 1000,
            "alert_thresholds": [2],
            "disable_after_failures": 1000,
        }),
    )
    .await;
    let (key, tenant) = (&ep.key, &ep.tenant);
    ep.publish_numbered(&app, "evt_streak", 1).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        let alerts = app.list_alerts(key, tenant, "kind=endpoint.failing").await;
        if alerts.len() == 1 {
            Ok(())
        } else {
            Err(format!("one failing alert: {alerts:?}"))
        }
    })
    .await;

    let enabled = ep.enable(&app, json!({})).await;
    enabled.assert_ok_with(&[("/replayed", json!(0))]);
    ep.publish_numbered(&app, "evt_streak_more", 1).await;
    // Both deliveries spend their whole schedule: 18 failures in one streak.
    ep.wait_for_health(&app, DELIVERY_TIMEOUT, |health| {
        if health["consecutive_failures"].as_u64() >= Some(18) {
            Ok(())
        } else {
            Err("18 consecutive failures".into())
        }
    })
    .await;
    let alerts = app.list_alerts(key, tenant, "").await;
    let kinds: Vec<&str> = alerts.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["endpoint.failing"], "{alerts:?}");
}
