//! The filters of the delivery and event lists (type, time, status class)
//! and an endpoint's attempts, newest first.

use super::{patient, set, Tenant};
use crate::common::{refused_url, spawn_app, Receiver, TestDb};
use serde_json::{json, Value};

backend_tests!(
    deliveries_and_events_are_filtered_by_type_time_and_status_class,
    an_endpoints_attempts_are_listed_newest_first_and_filtered,
);

async fn deliveries_and_events_are_filtered_by_type_time_and_status_class(db: TestDb) {
    let ok = Receiver::start();
    let not_found = Receiver::start();
    not_found.set_status(404);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    // 2xx, 4xx (waiting a day for its retry), no response (likewise).
    let succeeding = acme.endpoint(patient(&ok.url(), &[1])).await;
    let refusing = acme.endpoint(patient(&not_found.url(), &[86_400])).await;
    let unreachable = acme.endpoint(patient(&refused_url(), &[86_400])).await;

    let early_paid = acme.publish("invoice.paid").await;
    let early_failed = acme.publish("invoice.failed").await;
    let late_paid = acme.publish("invoice.paid").await;
    let late_failed = acme.publish("invoice.failed").await;
    let last_paid = acme.publish("invoice.paid").await;
    let since = acme.created_at(&late_paid).await;
    let until = acme.created_at(&last_paid).await;
    acme.wait_for_deliveries(&succeeding, |s, _| s == "succeeded")
        .await;
    acme.wait_for_deliveries(&refusing, |_, n| n == 1).await;
    acme.wait_for_deliveries(&unreachable, |_, n| n == 1).await;

    let endpoints = [&succeeding, &refusing, &unreachable];
    let all = [
        &early_paid,
        &early_failed,
        &late_paid,
        &late_failed,
        &last_paid,
    ];
    let everywhere = acme.deliveries_of(&endpoints, &all).await;
    assert_eq!(everywhere.len(), 15);
    assert_eq!(acme.listed("deliveries", "").await, everywhere);

    // By the status class of the last attempt.
    for (class, endpoint) in [
        ("2xx", &succeeding),
        ("4xx", &refusing),
        ("none", &unreachable),
    ] {
        assert_eq!(
            acme.listed("deliveries", &format!("status_class={class}"))
                .await,
            acme.deliveries_of(&[endpoint], &all).await,
            "status_class={class}"
        );
    }
    assert!(acme
        .listed("deliveries", "status_class=5xx")
        .await
        .is_empty());
    // By event type, exactly.
    let paid = [&early_paid, &late_paid, &last_paid];
    assert_eq!(
        acme.listed("deliveries", "event_type=invoice.paid").await,
        acme.deliveries_of(&endpoints, &paid).await
    );
    assert!(acme
        .listed("deliveries", "event_type=invoice")
        .await
        .is_empty());
    // By the event's time: since is inclusive, until exclusive.
    assert_eq!(
        acme.listed("deliveries", &format!("since={since}&until={until}"))
            .await,
        acme.deliveries_of(&endpoints, &[&late_paid, &late_failed])
            .await
    );
    assert_eq!(
        acme.listed("deliveries", &format!("until={since}")).await,
        acme.deliveries_of(&endpoints, &[&early_paid, &early_failed])
            .await
    );
    // Combined: one endpoint, one type, one class, from a time on.
    assert_eq!(
        acme.listed(
            "deliveries",
            &format!(
                "endpoint_id={refusing}&event_type=invoice.paid&since={since}&status_class=4xx"
            )
        )
        .await,
        acme.deliveries_of(&[&refusing], &[&late_paid, &last_paid])
            .await
    );
    assert!(acme
        .listed(
            "deliveries",
            &format!("endpoint_id={succeeding}&status_class=4xx")
        )
        .await
        .is_empty());

    // Events: by type and time, across pages.
    assert_eq!(acme.listed("events", "").await, set(&all));
    assert_eq!(
        acme.listed("events", "event_type=invoice.paid").await,
        set(&paid)
    );
    assert_eq!(
        acme.listed("events", &format!("since={since}")).await,
        set(&[&late_paid, &late_failed, &last_paid])
    );
    assert_eq!(
        acme.listed(
            "events",
            &format!("event_type=invoice.failed&until={until}")
        )
        .await,
        set(&[&early_failed, &late_failed])
    );
}

async fn an_endpoints_attempts_are_listed_newest_first_and_filtered(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let endpoint = acme.endpoint(patient(&receiver.url(), &[1])).await;
    acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "succeeded")
        .await;
    acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "succeeded")
        .await;

    let path = acme.path(&format!("endpoints/{endpoint}/attempts"));
    let attempts = acme.all_pages(&path, 1).await;
    let statuses: Vec<Value> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(
        statuses,
        vec![json!(200), json!(200), json!(500)],
        "{attempts:?}"
    );
    let started: Vec<&str> = attempts
        .iter()
        .map(|a| a["started_at"].as_str().expect("started_at"))
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {started:?}"
    );
    assert!(attempts.iter().all(|a| a["delivery_id"].is_string()));

    let count = |query: String| {
        let (acme, path) = (&acme, &path);
        async move { acme.all_pages(&format!("{path}?{query}"), 1).await.len() }
    };
    assert_eq!(count("status_class=5xx".into()).await, 1);
    assert_eq!(count("status_class=2xx".into()).await, 2);
    assert_eq!(count("status_class=none".into()).await, 0);
    let (newest, oldest) = (started[0], started[2]);
    assert_eq!(count(format!("since={oldest}")).await, 3);
    assert_eq!(count(format!("until={oldest}")).await, 0);
    assert_eq!(count(format!("since={newest}")).await, 1);
    assert_eq!(
        count(format!("since={oldest}&until={newest}&status_class=2xx")).await,
        1
    );
}
