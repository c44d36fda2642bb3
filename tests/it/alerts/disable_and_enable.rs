//! `endpoint.disabled` and `endpoint.enabled`: raised once each, and sent
//! to the alert URL and to the subscribers of their kind.

use super::{
    alert_kinds, alerts_received, app_with_alert_url, assert_no_new_alerts, kinds_of,
    settled_alerts, wait_alerts,
};
use crate::common::{
    id_of, operational_events, random_secret, wait_until, ReceivedRequest, Receiver, TestDb,
    DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(disabled_and_enabled_alerts_reach_subscribers_with_their_kind);

async fn disabled_and_enabled_alerts_reach_subscribers_with_their_kind(db: TestDb) {
    let alert_receiver = Receiver::start();
    let alert_secret = random_secret();
    let failing = Receiver::start();
    failing.set_status(500);
    let wide = Receiver::start();
    let exact = Receiver::start();
    let app = app_with_alert_url(db, &alert_receiver, &alert_secret).await;
    let (tenant, key, failing_ep) = app
        .create_tenant_with_endpoint(json!({
            "url": failing.url(),
            "event_types": ["invoice.*"],
            "max_in_flight": 1,
            "retry_schedule": [1, 1, 1, 1, 1],
            "alert_thresholds": [2],
            "breaker_failures": 1000,
            "disable_after_failures": 3,
            "disable_after_seconds": 0,
        }))
        .await;
    let f = id_of(&failing_ep);
    let wide_secret = random_secret();
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": wide.url(), "event_types": ["hookrelay.*"], "secret": wide_secret}),
    )
    .await;
    let exact_secret = random_secret();
    app.create_endpoint(
        &key,
        &tenant,
        json!({
            "url": exact.url(),
            "event_types": ["hookrelay.endpoint.enabled"],
            "secret": exact_secret,
        }),
    )
    .await;

    let event = app
        .publish_event(&key, &tenant, "invoice.paid", json!({}))
        .await;
    app.wait_for_disabled(&key, &tenant, &f).await;
    let alerts = settled_alerts(
        &app,
        &key,
        &tenant,
        2,
        &[&wide, &alert_receiver],
        "no alert after the endpoint is disabled",
    )
    .await;
    assert_eq!(
        alert_kinds(&alerts),
        ["endpoint.failing", "endpoint.disabled"],
        "{alerts:?}"
    );
    assert_eq!(alerts[0]["consecutive_failures"], json!(2), "{alerts:?}");
    assert_eq!(alerts[1]["consecutive_failures"], json!(3), "{alerts:?}");
    assert_eq!(alerts[1]["status_code"], json!(500), "{alerts:?}");
    assert_eq!(failing.count(), 3, "disabled at the third failure");

    for (receiver, secret, who) in [
        (&wide, &wide_secret, "hookrelay.* subscriber"),
        (&alert_receiver, &alert_secret, "alert URL"),
    ] {
        let got = alerts_received(receiver, secret, &tenant, &failing_ep, who);
        assert_eq!(got.len(), 2, "{who}: {got:?}");
        let disabled = got
            .iter()
            .find(|e| e["type"] == json!("hookrelay.endpoint.disabled"))
            .unwrap_or_else(|| panic!("{who} did not get endpoint.disabled: {got:?}"));
        assert_eq!(
            disabled["data"]["disabled_reason"],
            json!("consecutive_failures"),
            "{who}: {disabled}"
        );
        assert_eq!(
            disabled["data"]["consecutive_failures"],
            json!(3),
            "{who}: {disabled}"
        );
        assert_eq!(
            disabled["data"]["last_status_code"],
            json!(500),
            "{who}: {disabled}"
        );
        assert_eq!(disabled["id"], alerts[1]["id"], "{who}: {disabled}");
    }
    assert_eq!(
        exact.count(),
        0,
        "the exact-type subscriber wants only enabled"
    );

    failing.set_healthy();
    let enabled = app
        .enable_endpoint(&key, &tenant, &f, &json!({"replay": "held"}))
        .await;
    enabled.assert_ok_with(&[("/replayed", json!(1))]);
    let to_failing = app.single_delivery_id(&key, &tenant, &event).await;
    app.wait_for_delivery_state(&key, &tenant, &to_failing, "succeeded", DELIVERY_TIMEOUT)
        .await;

    let enabled_alerts = wait_alerts(&app, &key, &tenant, "kind=endpoint.enabled", 1).await;
    exact.wait_for_count(1, DELIVERY_TIMEOUT).await;
    wait_until(DELIVERY_TIMEOUT, || async {
        kinds_of(&operational_events_envelopes(&wide)).contains(&"endpoint.enabled".to_string())
    })
    .await;
    assert_no_new_alerts(
        &app,
        &key,
        &tenant,
        "kind=endpoint.enabled",
        &enabled_alerts,
        "one endpoint.enabled alert",
    )
    .await;
    assert_eq!(enabled_alerts.len(), 1, "one endpoint.enabled alert");
    assert_eq!(enabled_alerts[0]["endpoint_id"], json!(f));
    let got = alerts_received(
        &exact,
        &exact_secret,
        &tenant,
        &failing_ep,
        "exact subscriber",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(exact.count(), 1);
    assert_eq!(
        got[0]["type"],
        json!("hookrelay.endpoint.enabled"),
        "{got:?}"
    );
    assert_eq!(got[0]["id"], enabled_alerts[0]["id"]);
    for (receiver, secret, who) in [
        (&wide, &wide_secret, "hookrelay.* subscriber"),
        (&alert_receiver, &alert_secret, "alert URL"),
    ] {
        let kinds = kinds_of(&alerts_received(
            receiver,
            secret,
            &tenant,
            &failing_ep,
            who,
        ));
        for kind in ["endpoint.failing", "endpoint.disabled", "endpoint.enabled"] {
            assert_eq!(
                kinds.iter().filter(|k| *k == kind).count(),
                1,
                "{who} gets {kind} exactly once: {kinds:?}"
            );
        }
    }
    assert!(operational_events(&failing.requests()).is_empty());
}

fn operational_events_envelopes(receiver: &Receiver) -> Vec<Value> {
    operational_events(&receiver.requests())
        .iter()
        .map(ReceivedRequest::json)
        .collect()
}
