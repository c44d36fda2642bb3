//! The management API's guard rails: authentication, tenant isolation and
//! request validation, all answered with problem documents.

use crate::common::{data_of, id_of, spawn_app, to_bytes, Receiver, TestApp, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

backend_tests!(
    requests_without_a_valid_key_are_rejected_and_tenants_are_isolated,
    invalid_requests_are_rejected_and_create_nothing,
);

/// Ids of one tenant's endpoint, event and delivery.
struct Fixture {
    endpoint: String,
    event: String,
    delivery: String,
}

/// The `id` of each item of a list answer.
fn ids_listed(list: &Value) -> Vec<Value> {
    data_of(list, "the")
        .iter()
        .map(|item| item["id"].clone())
        .collect()
}

/// A request: method, path and body.
type Route = (Method, String, Option<Vec<u8>>);

/// The lists and creations under `tenant`'s path.
fn collections(tenant: &str, endpoint_body: &[u8], event_body: &[u8]) -> Vec<Route> {
    let base = format!("/v1/tenants/{tenant}");
    vec![
        (Method::GET, format!("{base}/endpoints"), None),
        (
            Method::POST,
            format!("{base}/endpoints"),
            Some(endpoint_body.to_vec()),
        ),
        (
            Method::POST,
            format!("{base}/events"),
            Some(event_body.to_vec()),
        ),
        (Method::GET, format!("{base}/deliveries"), None),
    ]
}

/// The endpoint, event and delivery of `ids`, read under `tenant`'s path.
fn single_items(tenant: &str, ids: &Fixture) -> Vec<Route> {
    let base = format!("/v1/tenants/{tenant}");
    vec![
        (
            Method::GET,
            format!("{base}/endpoints/{}", ids.endpoint),
            None,
        ),
        (Method::GET, format!("{base}/events/{}", ids.event), None),
        (
            Method::GET,
            format!("{base}/deliveries/{}", ids.delivery),
            None,
        ),
    ]
}

/// Changing and deleting `endpoint` under `tenant`'s path.
fn endpoint_changes(tenant: &str, endpoint: &str) -> Vec<Route> {
    let path = format!("/v1/tenants/{tenant}/endpoints/{endpoint}");
    let hijack = to_bytes(&json!({"description": "hijacked"}));
    vec![
        (Method::PATCH, path.clone(), Some(hijack)),
        (Method::DELETE, path, None),
    ]
}

async fn tenant_with_an_event(app: &TestApp, key: &str, tenant: &str, url: &str) -> Fixture {
    let endpoint = id_of(&app.create_endpoint(key, tenant, json!({"url": url})).await);
    let (event, deliveries) = app
        .publish_accepted(
            key,
            tenant,
            &json!({"type": "invoice.paid", "payload": {"tenant": tenant}}),
        )
        .await;
    assert_eq!(deliveries, 1);
    let delivery = app.single_delivery_id(key, tenant, &event).await;
    Fixture {
        endpoint,
        event,
        delivery,
    }
}

async fn requests_without_a_valid_key_are_rejected_and_tenants_are_isolated(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let (acme, acme_key) = app.create_tenant("acme").await;
    let (globex, globex_key) = app.create_tenant("globex").await;
    let a = tenant_with_an_event(&app, &acme_key, &acme, &receiver.url()).await;
    let b = tenant_with_an_event(&app, &globex_key, &globex, &receiver.url()).await;
    let event_body = to_bytes(&json!({"type": "invoice.paid", "payload": {}}));
    let endpoint_body = to_bytes(&json!({"url": receiver.url()}));

    // No key, or a key nobody issued: 401, on every kind of route.
    let mut routes: Vec<Route> = vec![
        (Method::GET, "/v1/tenants".into(), None),
        (
            Method::POST,
            "/v1/tenants".into(),
            Some(to_bytes(&json!({"name": "x"}))),
        ),
    ];
    routes.extend(collections("acme", &endpoint_body, &event_body));
    routes.extend(single_items("acme", &a));
    for (method, path, body) in &routes {
        let response = app
            .send(method.clone(), path, None, &[], body.clone())
            .await;
        response.assert_problem(401, &format!("{method} {path} without a key"));
        for wrong in ["wrong-key", "hr_not_a_real_key_0000000000000000"] {
            let response = app
                .send(method.clone(), path, Some(wrong), &[], body.clone())
                .await;
            response.assert_problem(401, &format!("{method} {path} with key {wrong:?}"));
        }
    }

    // Tenant keys cannot manage tenants.
    app.get(&acme_key, "/v1/tenants")
        .await
        .assert_problem(403, "tenant key on GET /v1/tenants");
    app.post(&acme_key, "/v1/tenants", &json!({"name": "sneaky"}))
        .await
        .assert_problem(403, "tenant key on POST /v1/tenants");

    // Another tenant's resources do not exist for acme's key, whether named
    // under globex's path or under acme's own.
    let mut foreign = collections("globex", &endpoint_body, &event_body);
    for tenant in ["globex", "acme"] {
        foreign.extend(single_items(tenant, &b));
        foreign.extend(endpoint_changes(tenant, &b.endpoint));
    }
    for (method, path, body) in &foreign {
        let response = app
            .send(method.clone(), path, Some(&acme_key), &[], body.clone())
            .await;
        response.assert_problem(404, &format!("acme's key on {method} {path}"));
    }

    // Nothing of globex changed.
    let endpoint = app
        .get_json(
            &globex_key,
            &format!("/v1/tenants/globex/endpoints/{}", b.endpoint),
        )
        .await;
    assert_ne!(endpoint["description"], json!("hijacked"), "{endpoint}");
    let endpoints = app
        .get_json(&globex_key, "/v1/tenants/globex/endpoints")
        .await;
    assert_eq!(
        endpoints["data"].as_array().map(Vec::len),
        Some(1),
        "{endpoints}"
    );
    let deliveries = app.list_deliveries(&globex_key, &globex, "").await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    // ...and acme's own lists only show acme's things.
    let acme_deliveries = app.list_deliveries(&acme_key, &acme, "").await;
    let ids: Vec<&Value> = acme_deliveries.iter().map(|d| &d["id"]).collect();
    assert_eq!(ids, vec![&json!(a.delivery)]);
    let acme_endpoints = app.get_json(&acme_key, "/v1/tenants/acme/endpoints").await;
    assert_eq!(ids_listed(&acme_endpoints), vec![json!(a.endpoint)]);

    // The admin key opens every tenant.
    let admin = app.admin_key.clone();
    let tenants = app.get_json(&admin, "/v1/tenants").await;
    let mut names: Vec<&str> = tenants["data"]
        .as_array()
        .unwrap_or_else(|| panic!("list without data: {tenants}"))
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["acme", "globex"]);
    for tenant_listing in tenants["data"].as_array().unwrap() {
        assert!(
            tenant_listing.get("api_key").is_none(),
            "tenant list must not reveal keys: {tenant_listing}"
        );
    }
    for (tenant, f) in [("acme", &a), ("globex", &b)] {
        app.get_json(&admin, &format!("/v1/tenants/{tenant}/endpoints"))
            .await;
        app.get_json(
            &admin,
            &format!("/v1/tenants/{tenant}/endpoints/{}", f.endpoint),
        )
        .await;
        app.get_json(&admin, &format!("/v1/tenants/{tenant}/events/{}", f.event))
            .await;
        app.get_json(&admin, &format!("/v1/tenants/{tenant}/deliveries"))
            .await;
        app.get_json(
            &admin,
            &format!("/v1/tenants/{tenant}/deliveries/{}", f.delivery),
        )
        .await;
    }
    let created = app
        .post(
            &admin,
            "/v1/tenants/globex/endpoints",
            &json!({"url": receiver.url(), "description": "by admin"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let published = app
        .post(
            &admin,
            "/v1/tenants/globex/events",
            &json!({"type": "user.created", "payload": {}}),
        )
        .await;
    assert_eq!(published.status, StatusCode::ACCEPTED, "{}", published.body);
    let patched = app
        .patch_json(
            &admin,
            &format!("/v1/tenants/globex/endpoints/{}", b.endpoint),
            &json!({"description": "renamed by admin"}),
        )
        .await;
    assert_eq!(patched["description"], json!("renamed by admin"));
    let deleted = app
        .delete(
            &admin,
            &format!("/v1/tenants/globex/endpoints/{}", b.endpoint),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    app.get(
        &globex_key,
        &format!("/v1/tenants/globex/endpoints/{}", b.endpoint),
    )
    .await
    .assert_problem(404, "a deleted endpoint");

    // Unknown tenant, even for the admin.
    app.get(&admin, "/v1/tenants/nobody/endpoints")
        .await
        .assert_problem(404, "admin on an unknown tenant");
    app.post(
        &admin,
        "/v1/tenants/nobody/events",
        &json!({"type": "a.b", "payload": {}}),
    )
    .await
    .assert_problem(404, "admin publishing for an unknown tenant");
}

async fn invalid_requests_are_rejected_and_create_nothing(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let admin = app.admin_key.clone();
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoints_path = format!("/v1/tenants/{tenant}/endpoints");
    let events_path = format!("/v1/tenants/{tenant}/events");

    // Malformed JSON: 400.
    for (path, k) in [
        ("/v1/tenants", admin.as_str()),
        (endpoints_path.as_str(), key.as_str()),
        (events_path.as_str(), key.as_str()),
    ] {
        let malformed: [&[u8]; 3] = [b"{\"url\": ", b"not json at all", b"{\"a\":1,}"];
        for raw in malformed {
            let response = app
                .send(Method::POST, path, Some(k), &[], Some(raw.to_vec()))
                .await;
            response.assert_problem(
                400,
                &format!("POST {path} with {:?}", String::from_utf8_lossy(raw)),
            );
        }
    }

    // Endpoints: each invalid body names its field.
    let url = receiver.url();
    let invalid_endpoints = [
        (json!({"description": "no url"}), "url"),
        (json!({"url": "ftp://x"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": ""}), "url"),
        (json!({"url": 42}), "url"),
        (json!({"url": url, "timeout_seconds": 0}), "timeout_seconds"),
        (
            json!({"url": url, "timeout_seconds": 301}),
            "timeout_seconds",
        ),
        (json!({"url": url, "max_in_flight": 0}), "max_in_flight"),
        (json!({"url": url, "max_in_flight": 257}), "max_in_flight"),
        (
            json!({"url": url, "retry_schedule": vec![1; 51]}),
            "retry_schedule",
        ),
        (json!({"url": url, "event_types": [""]}), "event_types[0]"),
    ];
    for (body, field) in &invalid_endpoints {
        app.post(&key, &endpoints_path, body)
            .await
            .assert_invalid_field(field, &format!("POST {endpoints_path} {body}"));
    }
    let endpoints = app.get_json(&key, &endpoints_path).await;
    assert_eq!(
        endpoints["data"],
        json!([]),
        "rejected endpoints must not be created: {endpoints}"
    );

    // Events: invalid types are refused before anything is stored or sent.
    app.create_endpoint(&key, &tenant, json!({"url": receiver.url()}))
        .await;
    let invalid_events = [
        (json!({"payload": {"a": 1}}), "type"),
        (json!({"type": "", "payload": {"a": 1}}), "type"),
        (json!({"type": 42, "payload": {"a": 1}}), "type"),
    ];
    for (body, field) in &invalid_events {
        app.publish(&key, &tenant, body)
            .await
            .assert_invalid_field(field, &format!("POST {events_path} {body}"));
    }
    let deliveries = app.list_deliveries(&key, &tenant, "").await;
    assert!(
        deliveries.is_empty(),
        "rejected events must not create deliveries: {deliveries:?}"
    );

    // Tenants.
    app.post(
        &admin,
        "/v1/tenants",
        &json!({"id": "bad/id with spaces", "name": "Bad"}),
    )
    .await
    .assert_invalid_field("id", "tenant with an invalid id");
    app.post(&admin, "/v1/tenants", &json!({"id": "initech"}))
        .await
        .assert_invalid_field("name", "tenant without a name");
    app.post(
        &admin,
        "/v1/tenants",
        &json!({"id": "acme", "name": "Again"}),
    )
    .await
    .assert_problem(409, "duplicate tenant id");
    let tenants = app.get_json(&admin, "/v1/tenants").await;
    assert_eq!(
        ids_listed(&tenants),
        vec![json!("acme")],
        "only acme exists: {tenants}"
    );

    assert_eq!(
        receiver.count(),
        0,
        "nothing was published, nothing may be sent"
    );
}
