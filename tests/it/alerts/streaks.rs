//! `endpoint.failing` once per threshold per streak, `endpoint.recovered`
//! when a success ends it, who gets them, and the alerts list with its
//! filters and pages.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{
    alert_kinds, alerts_received, app_with_alert_url, assert_no_new_alerts, ids_of, kinds_of,
    publish_and_wait, settled_alerts, wait_alerts,
};
use crate::common::{id_of, operational_events, random_secret, Receiver, TestDb, DELIVERY_TIMEOUT};
use serde_json::{json, Value};

backend_tests!(
    failing_alerts_fire_once_per_threshold_per_streak_and_reach_the_alert_url_and_subscribers,
);

/// Asserts that none of `receivers` (each with who it is) got an
/// operational event.
fn assert_no_operational_events(receivers: &[(&Receiver, &str)]) {
    for (receiver, who) in receivers {
        let got = operational_events(&receiver.requests());
        assert!(
            got.is_empty(),
            "{who} must not get operational events: {got:?}"
        );
    }
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
    // Endpoints that must never be sent one of these alerts.
    for (key, tenant, body) in [
        (
            &key,
            &tenant,
            json!({"url": catch_all.url(), "event_types": ["*"]}),
        ),
        (&key, &tenant, json!({"url": unfiltered.url()})),
        (
            &globex_key,
            &globex,
            json!({"url": other_tenant.url(), "event_types": ["hookrelay.*"]}),
        ),
    ] {
        app.create_endpoint(key, tenant, body).await;
    }

    // What each listener got so far, every alert checked on the way.
    let received_by_subscriber = || {
        alerts_received(
            &subscriber,
            &subscriber_secret,
            &tenant,
            &failing_ep,
            "subscriber",
        )
    };
    let received_at_alert_url = || {
        alerts_received(
            &alert_receiver,
            &alert_secret,
            &tenant,
            &failing_ep,
            "alert URL",
        )
    };

    // The alerts once `n` are raised and both listeners got them, shown to
    // stay that many (`why`).
    let listeners = [&subscriber, &alert_receiver];
    let settled =
        |n: usize, why: &'static str| settled_alerts(&app, &key, &tenant, n, &listeners, why);

    // Streak 1: five failures cross 2 and 3 once each.
    publish_and_wait(&app, &key, &tenant, &f, "failed").await;
    let alerts = settled(2, "exactly two alerts in the first streak").await;
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

    let to_subscriber = received_by_subscriber();
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

    let to_operator = received_at_alert_url();
    assert_eq!(alert_receiver.count(), 2, "one request per alert");
    assert_eq!(ids_of(&to_operator), alert_ids, "{to_operator:?}");
    assert_eq!(
        kinds_of(&to_operator),
        ["endpoint.failing", "endpoint.failing"]
    );

    let outsiders = [
        (&catch_all, "a catch-all `*` endpoint"),
        (&unfiltered, "an endpoint without event_types"),
        (&failing, "the failing endpoint itself"),
        (&other_tenant, "another tenant's subscriber"),
    ];
    assert_no_operational_events(&outsiders);
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
    let alerts = settled(5, "no further alerts").await;
    assert_eq!(
        alert_kinds(&alerts),
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
    let to_subscriber = received_by_subscriber();
    assert_eq!(to_subscriber.len(), 5);
    assert_eq!(ids_of(&to_subscriber), all_ids);
    let to_operator = received_at_alert_url();
    assert_eq!(to_operator.len(), 5);
    assert_eq!(ids_of(&to_operator), all_ids);
    assert_no_operational_events(&outsiders);

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
