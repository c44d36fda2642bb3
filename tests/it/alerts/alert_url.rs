//! The operator's alert URL: every tenant's alerts, retried until accepted,
//! and every threshold of a streak under the default bound on repeats.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{alerts_received, app_with_alert_url, check_alert_request, ids_of, wait_alerts};
use crate::common::{
    id_of, random_secret, spawn_app_with, wait_until, Receiver, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    the_alert_url_gets_every_tenants_alerts_and_retries_until_accepted,
    with_the_default_bound_every_threshold_of_a_streak_reaches_the_alert_url,
);

async fn the_alert_url_gets_every_tenants_alerts_and_retries_until_accepted(db: TestDb) {
    let alert_receiver = Receiver::start();
    // The first alert delivery fails; it must be retried, not lost.
    alert_receiver.script(&[500]);
    let alert_secret = random_secret();
    let failing = Receiver::start();
    failing.set_status(500);
    let app = app_with_alert_url(db, &alert_receiver, &alert_secret).await;
    let mut endpoints = Vec::new();
    for tenant in ["acme", "globex"] {
        let (tenant, key) = app.create_tenant(tenant).await;
        let endpoint = app
            .create_endpoint(
                &key,
                &tenant,
                json!({
                    "url": failing.url(),
                    "retry_schedule": [3600],
                    "alert_thresholds": [1],
                    "breaker_failures": 1000,
                    "disable_after_failures": 1000,
                }),
            )
            .await;
        app.publish_event(&key, &tenant, "invoice.paid", json!({}))
            .await;
        endpoints.push((tenant, key, endpoint));
    }

    let mut expected = BTreeSet::new();
    for (tenant, key, endpoint) in &endpoints {
        let alerts = wait_alerts(&app, key, tenant, "", 1).await;
        assert_eq!(alerts.len(), 1, "{tenant}: {alerts:?}");
        assert_eq!(alerts[0]["tenant_id"], json!(tenant), "{alerts:?}");
        assert_eq!(alerts[0]["endpoint_id"], endpoint["id"], "{alerts:?}");
        expected.insert((tenant.clone(), id_of(&alerts[0])));
    }

    let received = wait_until(DELIVERY_TIMEOUT, || async {
        let requests = alert_receiver.requests();
        let ids: BTreeSet<String> = requests
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_string))
            .collect();
        if requests.len() >= 3 && ids.len() == 2 {
            Ok(requests)
        } else {
            Err(format!(
                "both alerts at the alert URL, one of them twice; have {} requests for {ids:?}",
                requests.len()
            ))
        }
    })
    .await;
    alert_receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_secs(1),
            "one failed attempt, then each alert once",
        )
        .await;
    let mut got = BTreeSet::new();
    for request in &received {
        let envelope = request.json();
        let tenant = envelope["tenant_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (_, _, endpoint) = endpoints
            .iter()
            .find(|(t, _, _)| *t == tenant)
            .unwrap_or_else(|| panic!("alert for an unknown tenant: {envelope}"));
        let envelope = check_alert_request(request, &alert_secret, &tenant, endpoint, "alert URL");
        assert_eq!(
            envelope["type"],
            json!("hookrelay.endpoint.failing"),
            "{envelope}"
        );
        got.insert((tenant, id_of(&envelope)));
    }
    assert_eq!(got, expected, "the alert URL gets every tenant's alerts");
    assert_eq!(
        received[0].header("webhook-id"),
        received
            .iter()
            .skip(1)
            .find(|r| r.header("webhook-id") == received[0].header("webhook-id"))
            .and_then(|r| r.header("webhook-id")),
        "the alert answered with 500 is sent again"
    );
}

/// Issue 17: the bound on repeats (5 min by default) must not swallow a
/// streak's escalation. Default thresholds and interval; the breaker's
/// cool-down of 1 s and disabling on the count alone only let the streak
/// reach 10 within seconds.
async fn with_the_default_bound_every_threshold_of_a_streak_reaches_the_alert_url(db: TestDb) {
    let alert_receiver = Receiver::start();
    let alert_secret = random_secret();
    let failing = Receiver::start();
    failing.set_status(500);
    let (url, secret) = (alert_receiver.url(), alert_secret.clone());
    let app = spawn_app_with(db, move |settings| {
        settings.alert_url = Some(url);
        settings.alert_secret = Some(secret);
        settings.breaker_cooldown_seconds = 1;
        settings.breaker_max_cooldown_seconds = 1;
        settings.disable_after_seconds = 0;
    })
    .await;
    let (tenant, key, failing_ep) = app
        .create_tenant_with_endpoint(
            json!({"url": failing.url(), "retry_schedule": [1, 1, 1, 1, 1]}),
        )
        .await;
    let f = id_of(&failing_ep);
    for n in 0..12 {
        app.publish_event(&key, &tenant, "invoice.paid", json!({"n": n}))
            .await;
    }
    app.wait_for_disabled(&key, &tenant, &f).await;
    // The disabling attempt committed its alerts with it, and nothing is
    // attempted any more: every alert of the streak is stored.
    let alerts = wait_alerts(&app, &key, &tenant, "", 4).await;
    let raised: Vec<(&str, Value, Value)> = alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or_default(),
                a["threshold"].clone(),
                a["consecutive_failures"].clone(),
            )
        })
        .collect();
    assert_eq!(
        raised,
        [
            ("endpoint.failing", json!(3), json!(3)),
            ("endpoint.failing", json!(5), json!(5)),
            ("endpoint.failing", json!(10), json!(10)),
            ("endpoint.disabled", Value::Null, json!(10)),
        ],
        "{alerts:?}"
    );

    alert_receiver.wait_for_count(4, DELIVERY_TIMEOUT).await;
    let to_operator = alerts_received(
        &alert_receiver,
        &alert_secret,
        &tenant,
        &failing_ep,
        "alert URL",
    );
    assert_eq!(ids_of(&to_operator), ids_of(&alerts), "{to_operator:?}");
    let mut thresholds: Vec<u64> = to_operator
        .iter()
        .filter(|e| e["type"] == json!("hookrelay.endpoint.failing"))
        .filter_map(|e| e["data"]["threshold"].as_u64())
        .collect();
    thresholds.sort_unstable();
    assert_eq!(thresholds, [3, 5, 10], "{to_operator:?}");
    let disabled: Vec<&Value> = to_operator
        .iter()
        .filter(|e| e["type"] == json!("hookrelay.endpoint.disabled"))
        .collect();
    assert_eq!(disabled.len(), 1, "{to_operator:?}");
    assert_eq!(
        disabled[0]["data"]["disabled_reason"],
        json!("consecutive_failures"),
        "{to_operator:?}"
    );
    assert_eq!(alert_receiver.count(), 4, "one request per alert");
}
