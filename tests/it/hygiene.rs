//! A write the database refuses never comes from us, and bad input never
//! becomes a 500: what receivers say is stored whatever bytes it holds,
//! refused input is a 422 naming the field, ids that cannot exist are 404s,
//! and SIGTERM ends the process within the grace period.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{
    attempts_of, spawn_app, wait_until, Receiver, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT,
};
use crate::crash::Service;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

backend_tests!(
    a_nul_in_a_receivers_answer_is_stored_replaced_and_retries_follow_the_schedule,
    a_nul_in_a_payload_string_is_stored_and_delivered_as_sent,
    a_nul_in_any_refused_input_is_a_422_naming_the_field,
    a_nul_in_an_id_is_a_404_on_every_route_and_a_422_in_a_query,
    another_method_on_a_served_path_is_a_405_naming_the_allowed_ones,
    sigterm_ends_the_process_within_the_grace_period_while_an_endpoint_hangs,
);

/// A tenant, an endpoint on `receiver`, and the tenant's key.
async fn tenant_with_endpoint(
    app: &TestApp,
    receiver: &Receiver,
    extra: Value,
) -> (String, String, String) {
    let (tenant, key) = app.create_tenant("acme").await;
    let mut body = json!({"url": receiver.url()});
    if let (Some(fields), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        fields.extend(more.clone());
    }
    let endpoint = app.create_endpoint(&key, &tenant, body).await;
    let endpoint = endpoint["id"].as_str().unwrap_or_default().to_string();
    (tenant, key, endpoint)
}

async fn a_nul_in_a_receivers_answer_is_stored_replaced_and_retries_follow_the_schedule(
    db: TestDb,
) {
    let backend = db.backend();
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    receiver.set_status(500);
    receiver.set_body(Some(b"abc\x00def\xff"));
    let (tenant, key, _) =
        tenant_with_endpoint(&app, &receiver, json!({"retry_schedule": [1, 1]})).await;

    let (event, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": 1}}),
        )
        .await;
    let delivery = app.single_delivery_id(&key, &tenant, &event).await;
    let failed = app
        .wait_for_delivery_state(&key, &tenant, &delivery, "failed", DELIVERY_TIMEOUT)
        .await;

    assert_eq!(failed["attempt_count"], json!(3), "{backend}: {failed}");
    let attempts = attempts_of(&failed);
    assert_eq!(
        attempts.len(),
        3,
        "{backend}: one row per attempt: {failed}"
    );
    for attempt in &attempts {
        assert_eq!(attempt["status_code"], json!(500), "{backend}: {attempt}");
        assert_eq!(
            attempt["response_body"],
            json!("abc\u{fffd}def\u{fffd}"),
            "{backend}: NUL and invalid UTF-8 are stored as U+FFFD: {attempt}"
        );
        assert_eq!(attempt["error_kind"], json!("http_status"), "{attempt}");
    }
    // The schedule, nothing more: a first attempt and two retries.
    receiver
        .assert_nothing_more_arrives(
            3,
            Duration::from_millis(1500),
            &format!("{backend}: requests sent"),
        )
        .await;
}

async fn a_nul_in_a_payload_string_is_stored_and_delivered_as_sent(db: TestDb) {
    let backend = db.backend();
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key, _) = tenant_with_endpoint(&app, &receiver, json!({})).await;

    let payload = json!({"note": "abc\u{0}def", "key\u{0}": ["\u{1}"]});
    let (event, _) = app
        .publish_accepted(
            &key,
            &tenant,
            &json!({"id": "evt_nul", "type": "note.added", "payload": payload}),
        )
        .await;
    let received = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    assert_eq!(received[0].json()["data"], payload, "{backend}: delivered");
    let raw = String::from_utf8_lossy(&received[0].body).into_owned();
    assert!(
        raw.contains(r"abc\u0000def") && !raw.contains('\0'),
        "{backend}: the envelope escapes the NUL: {raw}"
    );
    let stored = app.get_event(&key, &tenant, &event).await;
    assert_eq!(stored["payload"], payload, "{backend}: stored");
}

async fn a_nul_in_any_refused_input_is_a_422_naming_the_field(db: TestDb) {
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key, endpoint) = tenant_with_endpoint(&app, &receiver, json!({})).await;
    let url = receiver.url();

    let tenants = "/v1/tenants";
    let endpoints = format!("/v1/tenants/{tenant}/endpoints");
    let one_endpoint = format!("/v1/tenants/{tenant}/endpoints/{endpoint}");
    let events = format!("/v1/tenants/{tenant}/events");
    let enable = format!("{one_endpoint}/enable");
    let recover = format!("{one_endpoint}/recover");
    let test = format!("{one_endpoint}/test");
    let refused: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::POST,
            tenants,
            json!({"id": "a\u{0}b", "name": "x"}),
            "id",
        ),
        (Method::POST, tenants, json!({"name": "Acme\u{0}"}), "name"),
        (Method::POST, tenants, json!({"name": "Acme\nInc"}), "name"),
        (
            Method::POST,
            &endpoints,
            json!({"url": format!("{url}\u{0}")}),
            "url",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": format!("{url}/a\u{0}b")}),
            "url",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": "http://127.0.0.1\u{0}:9/"}),
            "url",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "description": "a\u{0}b"}),
            "description",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "event_types": ["invoice.paid", "a\u{0}b"]}),
            "event_types[1]",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "headers": {"X-A\u{0}": "v"}}),
            "headers.X-A\u{0}",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "headers": {"X-Key": "a\u{0}b"}}),
            "headers.X-Key",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "headers": {"X-Key": "a\tb"}}),
            "headers.X-Key",
        ),
        (
            Method::POST,
            &endpoints,
            json!({"url": url, "secret": "whsec_\u{0}"}),
            "secret",
        ),
        (
            Method::PATCH,
            &one_endpoint,
            json!({"url": format!("{url}\u{0}")}),
            "url",
        ),
        (
            Method::PATCH,
            &one_endpoint,
            json!({"description": "\u{0}"}),
            "description",
        ),
        (
            Method::POST,
            &enable,
            json!({"replay": "held\u{0}"}),
            "replay",
        ),
        (
            Method::POST,
            &events,
            json!({"type": "a\u{0}b", "payload": {}}),
            "type",
        ),
        (
            Method::POST,
            &events,
            json!({"id": "evt\u{0}", "type": "a.b", "payload": {}}),
            "id",
        ),
        (
            Method::POST,
            &recover,
            json!({"since": "2024-01-01T00:00:00Z\u{0}"}),
            "since",
        ),
        (
            Method::POST,
            &recover,
            json!({"since": "2024-01-01T00:00:00Z", "until": "\u{0}"}),
            "until",
        ),
        (Method::POST, &test, json!({"payload": "\u{0}"}), "payload"),
    ];
    for (method, path, body, field) in refused {
        let response = app
            .send(
                method.clone(),
                path,
                Some(&key_for(path, &key)),
                &[],
                Some(serde_json::to_vec(&body).expect("JSON")),
            )
            .await;
        response.assert_invalid_field(field, &format!("{method} {path} {body}"));
    }

    // An Idempotency-Key must be visible ASCII (a tab is not).
    let response = app
        .send(
            Method::POST,
            &events,
            Some(&key),
            &[("Idempotency-Key", "a\tb")],
            Some(br#"{"type": "a.b", "payload": {}}"#.to_vec()),
        )
        .await;
    response.assert_invalid_field("Idempotency-Key", "Idempotency-Key with a tab");
    // A NUL cannot even be sent in a header: the HTTP parser refuses the
    // request (400) before it reaches us.
    let body = r#"{"type": "a.b", "payload": {}}"#;
    let status = raw_request(
        &app.address,
        &format!(
            "POST {events} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
             Idempotency-Key: a\0b\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 400, "a NUL in a header is refused by the parser");

    // Nothing refused was stored.
    let listed = app.get_json(ADMIN_KEY, "/v1/tenants").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let listed = app.get_json(&key, &endpoints).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let view = app.get_endpoint(&key, &tenant, &endpoint).await;
    assert_eq!(view["url"], json!(url), "{view}");
    assert_eq!(receiver.count(), 0, "no event was accepted");
}

/// Tenant creation and the tenant list are the admin's; the rest the tenant's.
fn key_for(path: &str, tenant_key: &str) -> String {
    if path == "/v1/tenants" {
        ADMIN_KEY.to_string()
    } else {
        tenant_key.to_string()
    }
}

/// Sends `request` as-is and returns the answer's status code.
fn raw_request(address: &str, request: &str) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to hookrelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream
        .write_all(request.as_bytes())
        .expect("send raw request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

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
    let (event, _) = app
        .publish_accepted(&key, &tenant, &json!({"type": "a.b", "payload": {}}))
        .await;
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
                        body.as_ref().map(|b| serde_json::to_vec(b).expect("JSON")),
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

async fn sigterm_ends_the_process_within_the_grace_period_while_an_endpoint_hangs(db: TestDb) {
    const GRACE_SECONDS: u64 = 3;
    let backend = db.backend();
    let receiver = Receiver::start();
    // Answers long after the grace period: the attempt is in flight at
    // SIGTERM.
    receiver.set_hanging(Duration::from_secs(60));
    let grace = GRACE_SECONDS.to_string();
    let mut service = Service::start_with(
        db.url(),
        "sigterm",
        &[("HOOKRELAY_SHUTDOWN_GRACE_SECONDS", grace.as_str())],
    )
    .await;
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    let (tenant, key, endpoint) = tenant_with_endpoint(
        &app,
        &receiver,
        json!({"timeout_seconds": 30, "retry_schedule": [1]}),
    )
    .await;
    let (event, _) = app
        .publish_accepted(&key, &tenant, &json!({"type": "a.b", "payload": {}}))
        .await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    // A change makes the endpoint's actor restart once its hanging attempt
    // ends, which it will not before the grace period is over.
    let response = app
        .patch(
            &key,
            &format!("/v1/tenants/{tenant}/endpoints/{endpoint}"),
            &json!({"description": "restart please"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    // And a request still arriving: headers sent, half of the body.
    let host = service.address.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&host).expect("connect");
    slow.write_all(
        format!(
            "POST /v1/tenants/{tenant}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"type\": "
        )
        .as_bytes(),
    )
    .expect("send half a request");
    // Lets the service read the headers: the signal finds the request under
    // way.
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM");
    let exit = wait_until(Duration::from_secs(30), || {
        let exited = service.child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    let took = signalled.elapsed();
    eprintln!("{backend}: SIGTERM to exit took {took:?} (grace {GRACE_SECONDS} s)");
    assert!(
        exit.success(),
        "{backend}: clean exit after SIGTERM: {exit:?}"
    );
    assert!(
        took <= Duration::from_secs(GRACE_SECONDS + 2),
        "{backend}: shutdown took {took:?} with a grace period of {GRACE_SECONDS} s"
    );
    drop(slow);

    // The attempt that was cut short is still pending and is sent after
    // the next start.
    receiver.set_healthy();
    let restarted = Service::start_with(db.url(), "sigterm-restarted", &[]).await;
    let app = TestApp::connect(&restarted.address, ADMIN_KEY);
    let delivery = app.single_delivery_id(&key, &tenant, &event).await;
    app.wait_for_delivery_state(&key, &tenant, &delivery, "succeeded", DELIVERY_TIMEOUT)
        .await;
}
