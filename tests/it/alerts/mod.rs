//! Alerts (issue 3): one `endpoint.failing` alert per threshold per failure
//! streak, `endpoint.disabled`, `endpoint.recovered`, `endpoint.enabled`;
//! each one delivered signed to the operator alert URL and, as an
//! operational event, to the same tenant's other endpoints that subscribe
//! to `hookrelay.endpoint.*` (never to catch-all endpoints, never to the
//! failing endpoint itself); and the alerts list with its filters.
//!
//! One module a part of that: [`streaks`] (failing and recovered, and the
//! list), [`disable_and_enable`], [`alert_url`]; below, what they share.

mod alert_url;
mod disable_and_enable;
mod streaks;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{
    assert_throughout, operational_events, spawn_app_with, verify_signature, wait_until,
    ReceivedRequest, Receiver, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

/// How long a scenario watches to show that no further alert is raised.
const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// An application whose operator alerts go to `alerts` signed with `secret`.
async fn app_with_alert_url(db: TestDb, alerts: &Receiver, secret: &str) -> TestApp {
    let (url, secret) = (alerts.url(), secret.to_string());
    spawn_app_with(db, move |settings| {
        settings.alert_url = Some(url);
        settings.alert_secret = Some(secret);
        // These scenarios follow every threshold of a streak; the bound on
        // alerts per interval has its own scenario (alert_storm).
        settings.alert_min_interval_seconds = 0;
    })
    .await
}

/// Checks a received alert (operational event or operator alert): valid
/// signature with `secret`, Standard Webhooks headers, the envelope of the
/// contract. Returns the envelope.
fn check_alert_request(
    request: &ReceivedRequest,
    secret: &str,
    tenant: &str,
    endpoint: &Value,
    who: &str,
) -> Value {
    verify_signature(secret, request)
        .unwrap_or_else(|e| panic!("{who}: alert with an invalid signature: {e}"));
    let envelope = request.json();
    let kind = envelope["data"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{who}: alert without data.kind: {envelope}"));
    assert_eq!(
        envelope["type"],
        json!(format!("hookrelay.{kind}")),
        "{who}: {envelope}"
    );
    assert!(envelope["id"].is_string(), "{who}: {envelope}");
    assert_eq!(
        request.header("webhook-id"),
        envelope["id"].as_str(),
        "{who}: webhook-id is the alert id: {envelope}"
    );
    assert_eq!(
        envelope["data"]["alert_id"], envelope["id"],
        "{who}: {envelope}"
    );
    assert_eq!(envelope["tenant_id"], json!(tenant), "{who}: {envelope}");
    assert!(envelope["timestamp"].is_string(), "{who}: {envelope}");
    let data = &envelope["data"];
    assert_eq!(data["endpoint_id"], endpoint["id"], "{who}: {envelope}");
    assert_eq!(data["endpoint_url"], endpoint["url"], "{who}: {envelope}");
    assert!(data["consecutive_failures"].is_u64(), "{who}: {envelope}");
    assert!(data["created_at"].is_string(), "{who}: {envelope}");
    for field in [
        "threshold",
        "failing_since",
        "last_status_code",
        "last_error",
        "disabled_reason",
    ] {
        assert!(
            data.get(field).is_some(),
            "{who}: data.{field} missing (may be null): {envelope}"
        );
    }
    envelope
}

/// The envelopes of the operational events a receiver got, checked.
fn alerts_received(
    receiver: &Receiver,
    secret: &str,
    tenant: &str,
    endpoint: &Value,
    who: &str,
) -> Vec<Value> {
    operational_events(&receiver.requests())
        .iter()
        .map(|r| check_alert_request(r, secret, tenant, endpoint, who))
        .collect()
}

fn kinds_of(envelopes: &[Value]) -> Vec<String> {
    envelopes
        .iter()
        .map(|e| e["data"]["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The kinds of alerts as the API lists them.
fn alert_kinds(alerts: &[Value]) -> Vec<&str> {
    alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect()
}

fn ids_of(envelopes: &[Value]) -> BTreeSet<String> {
    envelopes
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn wait_alerts(app: &TestApp, key: &str, tenant: &str, query: &str, n: usize) -> Vec<Value> {
    wait_until(DELIVERY_TIMEOUT, || async {
        let alerts = app.list_alerts(key, tenant, query).await;
        if alerts.len() >= n {
            Ok(alerts)
        } else {
            Err(format!("{n} alerts ({query}), have {alerts:?}"))
        }
    })
    .await
}

/// Shows that no further alert is raised during [`QUIET_WINDOW`] (see
/// `assert_throughout`): the alerts matching `query` stay `expected`.
async fn assert_no_new_alerts(
    app: &TestApp,
    key: &str,
    tenant: &str,
    query: &str,
    expected: &[Value],
    what: &str,
) {
    assert_throughout(QUIET_WINDOW, what, || async {
        let alerts = app.list_alerts(key, tenant, query).await;
        if alerts == expected {
            Ok(())
        } else {
            Err(format!(
                "alerts ({query}) {alerts:?}, expected {expected:?}"
            ))
        }
    })
    .await;
}

/// Waits until the tenant has `n` alerts and each of `receivers` has got
/// `n` requests, then shows that no further alert is raised (`what` says
/// why none should be); returns the alerts.
async fn settled_alerts(
    app: &TestApp,
    key: &str,
    tenant: &str,
    n: usize,
    receivers: &[&Receiver],
    what: &str,
) -> Vec<Value> {
    let alerts = wait_alerts(app, key, tenant, "", n).await;
    for receiver in receivers {
        receiver.wait_for_count(n, DELIVERY_TIMEOUT).await;
    }
    assert_no_new_alerts(app, key, tenant, "", &alerts, what).await;
    alerts
}

/// Publishes one `invoice.paid` and waits until the delivery to `endpoint`
/// reaches `state`.
async fn publish_and_wait(app: &TestApp, key: &str, tenant: &str, endpoint: &str, state: &str) {
    let event = app
        .publish_event(key, tenant, "invoice.paid", json!({}))
        .await;
    let event_view = app.get_event(key, tenant, &event).await;
    let delivery = event_view["deliveries"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["endpoint_id"] == json!(endpoint)))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("no delivery to {endpoint}: {event_view}"))
        .to_string();
    app.wait_for_delivery_state(key, tenant, &delivery, state, DELIVERY_TIMEOUT)
        .await;
}
