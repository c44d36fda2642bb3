//! Endpoint health (issue 3), isolation: dead and hanging endpoints do not
//! delay a healthy neighbour, and a tenant reaches only its own health,
//! alert, disable and enable routes.

use std::time::{Duration, Instant};

use crate::common::{
    id_of, last_failure_is, refused_url, spawn_app, spawn_app_with_failing_endpoint, wait_until,
    Receiver, TenantEndpoint, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

backend_tests!(
    dead_and_hanging_endpoints_do_not_delay_a_healthy_one,
    health_routes_are_tenant_isolated,
);

async fn dead_and_hanging_endpoints_do_not_delay_a_healthy_one(db: TestDb) {
    const EVENTS: usize = 20;
    const HANG_TIMEOUT_SECONDS: u64 = 5;
    let healthy = Receiver::start();
    let hanging = Receiver::start();
    hanging.set_hanging(Duration::from_secs(120));
    let app = spawn_app(db).await;
    let dead_ep = TenantEndpoint::create(
        &app,
        json!({"url": refused_url(), "retry_schedule": vec![1; 10]}),
    )
    .await;
    let hanging_ep = dead_ep
        .sibling(
            &app,
            json!({
                "url": hanging.url(),
                "timeout_seconds": HANG_TIMEOUT_SECONDS,
                "retry_schedule": vec![1; 10],
            }),
        )
        .await;
    let healthy_ep = dead_ep.sibling(&app, json!({"url": healthy.url()})).await;
    let (tenant, key) = (&dead_ep.tenant, &dead_ep.key);

    let started = Instant::now();
    let mut published = Vec::new();
    for n in 0..EVENTS {
        let id = format!("evt_iso_{n}");
        let (_, deliveries) = app
            .publish_accepted(
                key,
                tenant,
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
    let deliveries = healthy_ep
        .wait_all_deliveries(&app, EVENTS, "succeeded")
        .await;
    assert!(
        deliveries.iter().all(|(_, _, a)| *a == 1),
        "each healthy delivery succeeded at its first attempt: {deliveries:?}"
    );

    // The neighbours really were sick.
    dead_ep
        .wait_for_health(&app, DELIVERY_TIMEOUT, last_failure_is("connect"))
        .await;
    hanging_ep
        .wait_for_health(&app, DELIVERY_TIMEOUT, last_failure_is("timeout"))
        .await;
    assert!(hanging.count() >= 1);
    assert_eq!(
        healthy.count(),
        EVENTS,
        "no duplicates to the healthy endpoint"
    );
}

async fn health_routes_are_tenant_isolated(db: TestDb) {
    let (receiver, app, acme) = spawn_app_with_failing_endpoint(db, json!({})).await;
    let (acme_key, a) = (&acme.key, &acme.id);
    let (_, globex_key) = app.create_tenant("globex").await;
    let globex_ep = app
        .create_endpoint(
            &globex_key,
            "globex",
            json!({"url": receiver.url(), "alert_thresholds": [1], "retry_schedule": [3600]}),
        )
        .await;
    let b = id_of(&globex_ep);
    app.publish_event(&globex_key, "globex", "x.y", json!({}))
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
            .send(method.clone(), path, Some(acme_key), &[], body.clone())
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
    let rows = app.tenant_health(acme_key, "acme").await;
    let ids: Vec<&Value> = rows.iter().map(|r| &r["endpoint_id"]).collect();
    assert_eq!(ids, vec![&json!(a)], "{rows:?}");
    assert_eq!(
        app.list_alerts(acme_key, "acme", "").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        app.list_alerts(acme_key, "acme", &format!("endpoint_id={b}"))
            .await,
        Vec::<Value>::new()
    );
    app.endpoint_health(acme_key, "acme", a).await;

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
