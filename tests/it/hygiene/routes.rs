//! Every route of the API against ids that cannot exist (a 404, and a 422
//! in a query) and methods it does not serve (a 405 naming the allowed
//! ones).

use super::tenant_with_endpoint;
use crate::common::{spawn_app, to_bytes, Receiver, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    a_nul_in_an_id_is_a_404_on_every_route_and_a_422_in_a_query,
    another_method_on_a_served_path_is_a_405_naming_the_allowed_ones,
);

/// Every route of `api::ROUTES` under `/v1/tenants/{tenant}`, with a valid
/// body for those that take one, so that a 404 cannot come from the body.
fn tenant_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    hookrelay::api::ROUTES
        .iter()
        .filter(|(_, route)| route.starts_with("/v1/tenants/{tenant}"))
        .map(|&(method, route)| {
            let method = Method::from_bytes(method.to_uppercase().as_bytes())
                .unwrap_or_else(|_| panic!("method {method} of {route}"));
            let body = valid_body(&method, route);
            (method, route, body)
        })
        .collect()
}

async fn another_method_on_a_served_path_is_a_405_naming_the_allowed_ones(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let tenant_path = format!("/v1/tenants/{tenant}");
    let cases = [
        (Method::PUT, "/v1/tenants".to_string(), Some("POST, GET")),
        (
            Method::DELETE,
            format!("{tenant_path}/endpoints"),
            Some("POST, GET"),
        ),
        (
            Method::PUT,
            format!("{tenant_path}/endpoints/ep_x"),
            Some("GET, PATCH, DELETE"),
        ),
        (
            Method::GET,
            format!("{tenant_path}/endpoints/ep_x/rotate-secret"),
            Some("POST"),
        ),
        (Method::POST, "/healthz".to_string(), Some("GET")),
        (
            Method::HEAD,
            format!("{tenant_path}/api-keys"),
            Some("POST, GET"),
        ),
        // A path that is not served stays a 404, whatever the method.
        (Method::GET, format!("{tenant_path}/widgets"), None),
        (Method::PUT, "/v1/nothing".to_string(), None),
    ];
    for (method, path, allow) in cases {
        for who in [Some(key.as_str()), None] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.address));
            if let Some(who) = who {
                request = request.bearer_auth(who);
            }
            let response = request.send().await.expect("the request is answered");
            let context = format!("{method} {path}");
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (allowed, content_type) = (header("allow"), header("content-type"));
            let status = response.status();
            let expected = if allow.is_some() { 405 } else { 404 };
            assert_eq!(status.as_u16(), expected, "{context}");
            assert_eq!(allowed.as_deref(), allow, "{context}: Allow");
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{context}"
            );
            if method != Method::HEAD {
                let body: Value = response.json().await.expect("a JSON problem");
                assert_eq!(body["status"], json!(expected), "{context}: {body}");
            }
        }
    }
}

/// A route added to `api::ROUTES` that takes a body fails here until it is
/// given one.
fn valid_body(method: &Method, route: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    let under_tenant = route.trim_start_matches("/v1/tenants/{tenant}");
    Some(match (method.as_str(), under_tenant) {
        ("PATCH", "") => json!({"reject_unknown_event_types": true}),
        ("POST", "/event-types") => json!({"name": "a.b"}),
        ("PATCH", "/event-types/{event_type}") => json!({"description": "x"}),
        ("POST", "/api-keys") => json!({"name": "x"}),
        ("POST", "/endpoints") => json!({"url": "http://127.0.0.1:9/"}),
        ("PATCH", "/endpoints/{endpoint}") => json!({"description": "x"}),
        ("POST", "/endpoints/{endpoint}/rotate-secret") => json!({}),
        ("POST", "/endpoints/{endpoint}/disable") => json!({}),
        ("POST", "/endpoints/{endpoint}/enable") => json!({}),
        ("POST", "/endpoints/{endpoint}/recover") => json!({"since": "2024-01-01T00:00:00Z"}),
        ("POST", "/endpoints/{endpoint}/test") => json!({}),
        ("POST", "/events") => json!({"type": "a.b", "payload": {}}),
        ("POST", "/deliveries/{delivery}/retry") => json!({}),
        _ => panic!("no valid body for {method} {route}: add one to valid_body"),
    })
}

/// The parameters of a route template, in order: `{tenant}` first.
fn placeholders(route: &str) -> Vec<&str> {
    route
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

async fn a_nul_in_an_id_is_a_404_on_every_route_and_a_422_in_a_query(db: TestDb) {
    let backend = db.backend();
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key, endpoint) = tenant_with_endpoint(&app, &receiver, json!({})).await;
    let event = app.publish_event(&key, &tenant, "a.b", json!({})).await;
    let delivery = app.single_delivery_id(&key, &tenant, &event).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;

    let declared = app
        .post(
            &key,
            &format!("/v1/tenants/{tenant}/event-types"),
            &json!({"name": "a.b"}),
        )
        .await;
    assert_eq!(declared.status.as_u16(), 201, "{}", declared.body);
    let keys = app
        .get_json(&key, &format!("/v1/tenants/{tenant}/api-keys"))
        .await;
    let key_id = keys["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the tenant's key: {keys}"))
        .to_string();
    let real_id = |placeholder: &str| -> String {
        match placeholder {
            "tenant" => tenant.clone(),
            "endpoint" => endpoint.clone(),
            "event" => event.clone(),
            "delivery" => delivery.clone(),
            "event_type" => "a.b".to_string(),
            "key" => key_id.clone(),
            other => panic!("no real id for {{{other}}}: add one here"),
        }
    };

    let bad_ids = ["%00", "a%00b", "%00%00", "%0A", "%FF", "a%2Fb", "ev%25t"];
    for (method, route, body) in tenant_routes() {
        let mut paths = Vec::new();
        for bad in bad_ids {
            // Each id bad in turn, the others real.
            for wrong in placeholders(route) {
                let mut path = route.to_string();
                for placeholder in placeholders(route) {
                    let id = if placeholder == wrong {
                        bad.to_string()
                    } else {
                        real_id(placeholder)
                    };
                    path = path.replace(&format!("{{{placeholder}}}"), &id);
                }
                paths.push(path);
            }
        }
        for path in paths {
            for who in [ADMIN_KEY, key.as_str()] {
                let response = app
                    .send(
                        method.clone(),
                        &path,
                        Some(who),
                        &[],
                        body.as_ref().map(to_bytes),
                    )
                    .await;
                response.assert_problem(404, &format!("{backend}: {method} {path}"));
            }
            // Without a key it is a 401, as for any id.
            let response = app.send(method.clone(), &path, None, &[], None).await;
            response.assert_problem(401, &format!("{backend}: {method} {path} without a key"));
        }
    }

    // Ids in a query: a cursor or a filter that cannot be an id is a 422
    // naming it; the other filters were already parsed.
    let attempts = format!("/v1/tenants/{tenant}/endpoints/{endpoint}/attempts");
    let lists = [
        ("/v1/tenants".to_string(), ADMIN_KEY),
        (format!("/v1/tenants/{tenant}/endpoints"), key.as_str()),
        (format!("/v1/tenants/{tenant}/deliveries"), key.as_str()),
        (format!("/v1/tenants/{tenant}/events"), key.as_str()),
        (format!("/v1/tenants/{tenant}/alerts"), key.as_str()),
        (format!("/v1/tenants/{tenant}/event-types"), key.as_str()),
        (attempts.clone(), key.as_str()),
    ];
    for (list, who) in &lists {
        for bad in bad_ids {
            let path = format!("{list}?cursor={bad}");
            app.get(who, &path)
                .await
                .assert_invalid_field("cursor", &format!("{backend}: GET {path}"));
        }
    }
    for bad in bad_ids {
        for list in ["deliveries", "alerts"] {
            let path = format!("/v1/tenants/{tenant}/{list}?endpoint_id={bad}");
            app.get(&key, &path)
                .await
                .assert_invalid_field("endpoint_id", &format!("{backend}: GET {path}"));
        }
        for (list, field, good) in [
            ("deliveries", "state", "pending"),
            ("alerts", "kind", "failing"),
            ("alerts", "since", "2024-01-01T00:00:00Z"),
            ("deliveries", "event_type", "a.b"),
            ("deliveries", "until", "2024-01-01T00:00:00Z"),
            ("deliveries", "status_class", "2xx"),
            ("events", "event_type", "a.b"),
            ("events", "since", "2024-01-01T00:00:00Z"),
            ("endpoints/{endpoint}/attempts", "status_class", "none"),
            (
                "endpoints/{endpoint}/attempts",
                "since",
                "2024-01-01T00:00:00Z",
            ),
        ] {
            let list = list.replace("{endpoint}", &endpoint);
            let path = format!("/v1/tenants/{tenant}/{list}?{field}={good}{bad}");
            app.get(&key, &path)
                .await
                .assert_invalid_field(field, &format!("{backend}: GET {path}"));
        }
    }

    // Real ids keep working, and an unknown but well-formed filter is still
    // an empty list.
    let listed = app
        .list_deliveries(&key, &tenant, &format!("endpoint_id={endpoint}"))
        .await;
    assert_eq!(listed.len(), 1, "{backend}: {listed:?}");
    let listed = app
        .list_deliveries(&key, &tenant, "endpoint_id=ep_unknown")
        .await;
    assert!(listed.is_empty(), "{backend}: {listed:?}");
    app.get_delivery(&key, &tenant, &delivery).await;
    app.get_json(
        &key,
        &format!("/v1/tenants/{tenant}/deliveries?cursor={delivery}"),
    )
    .await;
}
