//! Alerts (issue 3): one `endpoint.failing` alert per threshold per failure
//! streak, `endpoint.disabled`, `endpoint.recovered`, `endpoint.enabled`;
//! each one delivered signed to the operator alert URL and, as an
//! operational event, to the same tenant's other endpoints that subscribe
//! to `hookrelay.endpoint.*` (never to catch-all endpoints, never to the
//! failing endpoint itself); and the alerts list with its filters.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{
    assert_throughout, operational_events, random_secret, spawn_app_with, verify_signature,
    wait_until, ReceivedRequest, Receiver, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    failing_alerts_fire_once_per_threshold_per_streak_and_reach_the_alert_url_and_subscribers,
    disabled_and_enabled_alerts_reach_subscribers_with_their_kind,
    the_alert_url_gets_every_tenants_alerts_and_retries_until_accepted,
    with_the_default_bound_every_threshold_of_a_streak_reaches_the_alert_url,
);

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

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

/// Shows that no further alert is raised during `window` (see
/// `assert_throughout`): the alerts matching `query` stay `expected`.
async fn assert_no_new_alerts(
    app: &TestApp,
    key: &str,
    tenant: &str,
    query: &str,
    expected: &[Value],
    window: Duration,
    what: &str,
) {
    assert_throughout(window, what, || async {
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

/// Publishes one `invoice.paid` and waits until the delivery to `endpoint`
/// reaches `state`.
async fn publish_and_wait(app: &TestApp, key: &str, tenant: &str, endpoint: &str, state: &str) {
    let (event, _) = app
        .publish_accepted(key, tenant, &json!({"type": "invoice.paid", "payload": {}}))
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

async fn failing_alerts_fire_once_per_threshold_per_streak_and_reach_the_alert_url_and_subscribers(
    db: TestDb,
) {
    let alert_receiver = Receiver::start();
    let alert_secret = random_secret();
    let failing = Receiver::start();
    failing.set_status(500);
    let subscriber = Receiver::start();
    let catch_all = Receiver::start();
    let unfiltered = Receiver::start();
    let other_tenant = Receiver::start();
    let app = app_with_alert_url(db, &alert_receiver, &alert_secret).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let (globex, globex_key) = app.create_tenant("globex").await;

    // The failing endpoint subscribes to operational events too: it must
    // never be sent its own.
    let failing_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": failing.url(),
                "event_types": ["invoice.*", "hookrelay.endpoint.*"],
                "max_in_flight": 1,
                "retry_schedule": [1, 1, 1, 1],
                "alert_thresholds": [2, 3],
                "breaker_failures": 1000,
                "disable_after_failures": 1000,
            }),
        )
        .await;
    let f = id_of(&failing_ep);
    let subscriber_secret = random_secret();
    let subscriber_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": subscriber.url(),
                "event_types": ["hookrelay.endpoint.*"],
                "secret": subscriber_secret,
            }),
        )
        .await;
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": catch_all.url(), "event_types": ["*"]}),
    )
    .await;
    app.create_endpoint(&key, &tenant, json!({"url": unfiltered.url()}))
        .await;
    app.create_endpoint(
        &globex_key,
        &globex,
        json!({"url": other_tenant.url(), "event_types": ["hookrelay.*"]}),
    )
    .await;

    // Streak 1: five failures cross 2 and 3 once each.
    publish_and_wait(&app, &key, &tenant, &f, "failed").await;
    let alerts = wait_alerts(&app, &key, &tenant, "", 2).await;
    subscriber.wait_for_count(2, DELIVERY_TIMEOUT).await;
    alert_receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_no_new_alerts(
        &app,
        &key,
        &tenant,
        "",
        &alerts,
        Duration::from_secs(1),
        "exactly two alerts in the first streak",
    )
    .await;
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    for (alert, threshold) in alerts.iter().zip([2, 3]) {
        assert_eq!(alert["kind"], json!("endpoint.failing"), "{alert}");
        assert_eq!(alert["threshold"], json!(threshold), "{alert}");
        assert_eq!(alert["consecutive_failures"], json!(threshold), "{alert}");
        assert_eq!(alert["endpoint_id"], json!(f), "{alert}");
        assert_eq!(alert["tenant_id"], json!(tenant), "{alert}");
        assert_eq!(alert["status_code"], json!(500), "{alert}");
        assert!(alert["created_at"].is_string(), "{alert}");
        assert!(alert.get("error").is_some(), "{alert}");
    }
    let alert_ids: BTreeSet<String> = alerts.iter().map(id_of).collect();

    let to_subscriber = alerts_received(
        &subscriber,
        &subscriber_secret,
        &tenant,
        &failing_ep,
        "subscriber",
    );
    assert_eq!(
        subscriber.count(),
        2,
        "the subscriber gets nothing but alerts"
    );
    assert_eq!(ids_of(&to_subscriber), alert_ids, "{to_subscriber:?}");
    for envelope in &to_subscriber {
        assert_eq!(
            envelope["type"],
            json!("hookrelay.endpoint.failing"),
            "{envelope}"
        );
        let data = &envelope["data"];
        assert_eq!(data["last_status_code"], json!(500), "{envelope}");
        assert!(data["failing_since"].is_string(), "{envelope}");
        assert_eq!(data["disabled_reason"], Value::Null, "{envelope}");
    }
    let thresholds: BTreeSet<u64> = to_subscriber
        .iter()
        .filter_map(|e| e["data"]["consecutive_failures"].as_u64())
        .collect();
    assert_eq!(thresholds, BTreeSet::from([2, 3]));

    let to_operator = alerts_received(
        &alert_receiver,
        &alert_secret,
        &tenant,
        &failing_ep,
        "alert URL",
    );
    assert_eq!(alert_receiver.count(), 2, "one request per alert");
    assert_eq!(ids_of(&to_operator), alert_ids, "{to_operator:?}");
    assert_eq!(
        kinds_of(&to_operator),
        ["endpoint.failing", "endpoint.failing"]
    );

    for (receiver, who) in [
        (&catch_all, "a catch-all `*` endpoint"),
        (&unfiltered, "an endpoint without event_types"),
        (&failing, "the failing endpoint itself"),
        (&other_tenant, "another tenant's subscriber"),
    ] {
        assert!(
            operational_events(&receiver.requests()).is_empty(),
            "{who} must not get operational events: {:?}",
            operational_events(&receiver.requests())
        );
    }
    assert_eq!(
        catch_all.count(),
        1,
        "the catch-all endpoint got the invoice only"
    );
    assert_eq!(
        unfiltered.count(),
        1,
        "the unfiltered endpoint got the invoice only"
    );
    assert_eq!(failing.count(), 5);

    // Still the same streak (10 failures now): no alert is repeated.
    publish_and_wait(&app, &key, &tenant, &f, "failed").await;
    assert_no_new_alerts(
        &app,
        &key,
        &tenant,
        "",
        &alerts,
        Duration::from_secs(1),
        "thresholds already crossed in this streak do not alert again",
    )
    .await;
    assert_eq!(failing.count(), 10);
    assert_eq!(subscriber.count(), 2);
    assert_eq!(alert_receiver.count(), 2);

    // A success ends the streak: endpoint.recovered.
    let before_recovery = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The recovery alert is then created strictly after `before_recovery`,
    // which is cut to the millisecond.
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    failing.set_healthy();
    publish_and_wait(&app, &key, &tenant, &f, "succeeded").await;
    let alerts = wait_alerts(&app, &key, &tenant, "", 3).await;
    assert_eq!(alerts[2]["kind"], json!("endpoint.recovered"), "{alerts:?}");
    assert_eq!(alerts[2]["endpoint_id"], json!(f), "{alerts:?}");
    subscriber.wait_for_count(3, DELIVERY_TIMEOUT).await;
    alert_receiver.wait_for_count(3, DELIVERY_TIMEOUT).await;

    // A new streak alerts again at 2 and 3.
    failing.set_status(500);
    publish_and_wait(&app, &key, &tenant, &f, "failed").await;
    let alerts = wait_alerts(&app, &key, &tenant, "", 5).await;
    subscriber.wait_for_count(5, DELIVERY_TIMEOUT).await;
    alert_receiver.wait_for_count(5, DELIVERY_TIMEOUT).await;
    assert_no_new_alerts(
        &app,
        &key,
        &tenant,
        "",
        &alerts,
        Duration::from_secs(1),
        "no further alerts",
    )
    .await;
    let kinds: Vec<&str> = alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "endpoint.failing",
            "endpoint.failing",
            "endpoint.recovered",
            "endpoint.failing",
            "endpoint.failing"
        ],
        "oldest first: {alerts:?}"
    );
    assert_eq!(alerts[3]["consecutive_failures"], json!(2), "{alerts:?}");
    assert_eq!(alerts[4]["consecutive_failures"], json!(3), "{alerts:?}");
    let created: Vec<_> = alerts
        .iter()
        .map(|a| crate::common::parse_time(&a["created_at"], "created_at"))
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {alerts:?}"
    );
    let all_ids: BTreeSet<String> = alerts.iter().map(id_of).collect();
    let to_subscriber = alerts_received(
        &subscriber,
        &subscriber_secret,
        &tenant,
        &failing_ep,
        "subscriber",
    );
    assert_eq!(to_subscriber.len(), 5);
    assert_eq!(ids_of(&to_subscriber), all_ids);
    let to_operator = alerts_received(
        &alert_receiver,
        &alert_secret,
        &tenant,
        &failing_ep,
        "alert URL",
    );
    assert_eq!(to_operator.len(), 5);
    assert_eq!(ids_of(&to_operator), all_ids);
    for (receiver, who) in [
        (&catch_all, "a catch-all `*` endpoint"),
        (&unfiltered, "an endpoint without event_types"),
        (&failing, "the failing endpoint itself"),
        (&other_tenant, "another tenant's subscriber"),
    ] {
        assert!(
            operational_events(&receiver.requests()).is_empty(),
            "{who} must not get operational events"
        );
    }

    // The list and its filters.
    let failing_only = app
        .list_alerts(&key, &tenant, "kind=endpoint.failing")
        .await;
    assert_eq!(failing_only.len(), 4, "{failing_only:?}");
    let recovered = app
        .list_alerts(&key, &tenant, "kind=endpoint.recovered")
        .await;
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0], alerts[2]);
    let by_endpoint = app
        .list_alerts(&key, &tenant, &format!("endpoint_id={f}"))
        .await;
    assert_eq!(by_endpoint, alerts);
    let by_sibling = app
        .list_alerts(
            &key,
            &tenant,
            &format!("endpoint_id={}", id_of(&subscriber_ep)),
        )
        .await;
    assert!(by_sibling.is_empty(), "{by_sibling:?}");
    let since = app
        .list_alerts(&key, &tenant, &format!("since={before_recovery}"))
        .await;
    assert_eq!(since, alerts[2..].to_vec(), "since={before_recovery}");
    let combined = app
        .list_alerts(
            &key,
            &tenant,
            &format!("since={before_recovery}&kind=endpoint.failing&endpoint_id={f}"),
        )
        .await;
    assert_eq!(combined, alerts[3..].to_vec());
    let future = app
        .list_alerts(&key, &tenant, "since=2999-01-01T00:00:00Z")
        .await;
    assert!(future.is_empty(), "{future:?}");
    assert!(app.list_alerts(&globex_key, &globex, "").await.is_empty());

    // Pages of two.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/{tenant}/alerts?limit=2&cursor={c}"),
            None => format!("/v1/tenants/{tenant}/alerts?limit=2"),
        };
        let page = app.get_json(&key, &path).await;
        let data = page["data"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(data.len() <= 2, "{page}");
        paged.extend(data.iter().cloned());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(
        paged, alerts,
        "paging yields every alert once, oldest first"
    );

    let path = format!("/v1/tenants/{tenant}/alerts");
    app.get(&key, &format!("{path}?kind=endpoint.exploded"))
        .await
        .assert_invalid_field("kind", "unknown alert kind");
    app.get(&key, &format!("{path}?since=yesterday"))
        .await
        .assert_invalid_field("since", "since that is not RFC 3339");
}

async fn disabled_and_enabled_alerts_reach_subscribers_with_their_kind(db: TestDb) {
    let alert_receiver = Receiver::start();
    let alert_secret = random_secret();
    let failing = Receiver::start();
    failing.set_status(500);
    let wide = Receiver::start();
    let exact = Receiver::start();
    let app = app_with_alert_url(db, &alert_receiver, &alert_secret).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let failing_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": failing.url(),
                "event_types": ["invoice.*"],
                "max_in_flight": 1,
                "retry_schedule": [1, 1, 1, 1, 1],
                "alert_thresholds": [2],
                "breaker_failures": 1000,
                "disable_after_failures": 3,
                "disable_after_seconds": 0,
            }),
        )
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

    let (event, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {}}),
        )
        .await;
    app.wait_for_disabled(&key, &tenant, &f).await;
    let alerts = wait_alerts(&app, &key, &tenant, "", 2).await;
    wide.wait_for_count(2, DELIVERY_TIMEOUT).await;
    alert_receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_no_new_alerts(
        &app,
        &key,
        &tenant,
        "",
        &alerts,
        Duration::from_secs(1),
        "no alert after the endpoint is disabled",
    )
    .await;
    let kinds: Vec<&str> = alerts
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
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
    assert_eq!(enabled.status, reqwest::StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["replayed"], json!(1), "{}", enabled.body);
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
        Duration::from_secs(1),
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
        app.publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {}}),
        )
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
    let (tenant, key) = app.create_tenant("acme").await;
    let failing_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": failing.url(), "retry_schedule": [1, 1, 1, 1, 1]}),
        )
        .await;
    let f = id_of(&failing_ep);
    for n in 0..12 {
        app.publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": n}}),
        )
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
