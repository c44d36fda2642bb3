//! NUL and other bytes that have no place in text: stored replaced when a
//! receiver answers them, stored and delivered as sent inside a payload
//! string, and refused with a 422 naming the field in any other input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::tenant_with_endpoint;
use crate::common::{
    attempts_of, spawn_app, to_bytes, Receiver, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT,
};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    a_nul_in_a_receivers_answer_is_stored_replaced_and_retries_follow_the_schedule,
    a_nul_in_a_payload_string_is_stored_and_delivered_as_sent,
    a_nul_in_any_refused_input_is_a_422_naming_the_field,
);

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

    let event = app
        .publish_event(&key, &tenant, "invoice.paid", json!({"n": 1}))
        .await;
    let failed = app
        .wait_for_single_delivery(&key, &tenant, &event, "failed")
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

/// A route (method and path) and the bodies it must refuse, each with the
/// field its 422 names.
type RefusedAt<'a> = (Method, &'a str, Vec<(Value, &'a str)>);

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
    // Each route with the inputs it must refuse, naming the field.
    let refused: Vec<RefusedAt> = vec![
        (
            Method::POST,
            tenants,
            vec![
                (json!({"id": "a\u{0}b", "name": "x"}), "id"),
                (json!({"name": "Acme\u{0}"}), "name"),
                (json!({"name": "Acme\nInc"}), "name"),
            ],
        ),
        (
            Method::POST,
            &endpoints,
            vec![
                (json!({"url": format!("{url}\u{0}")}), "url"),
                (json!({"url": format!("{url}/a\u{0}b")}), "url"),
                (json!({"url": "http://127.0.0.1\u{0}:9/"}), "url"),
                (json!({"url": url, "description": "a\u{0}b"}), "description"),
                (
                    json!({"url": url, "event_types": ["invoice.paid", "a\u{0}b"]}),
                    "event_types[1]",
                ),
                (
                    json!({"url": url, "headers": {"X-A\u{0}": "v"}}),
                    "headers.X-A\u{0}",
                ),
                (
                    json!({"url": url, "headers": {"X-Key": "a\u{0}b"}}),
                    "headers.X-Key",
                ),
                (
                    json!({"url": url, "headers": {"X-Key": "a\tb"}}),
                    "headers.X-Key",
                ),
                (json!({"url": url, "secret": "whsec_\u{0}"}), "secret"),
            ],
        ),
        (
            Method::PATCH,
            &one_endpoint,
            vec![
                (json!({"url": format!("{url}\u{0}")}), "url"),
                (json!({"description": "\u{0}"}), "description"),
            ],
        ),
        (
            Method::POST,
            &enable,
            vec![(json!({"replay": "held\u{0}"}), "replay")],
        ),
        (
            Method::POST,
            &events,
            vec![
                (json!({"type": "a\u{0}b", "payload": {}}), "type"),
                (
                    json!({"id": "evt\u{0}", "type": "a.b", "payload": {}}),
                    "id",
                ),
            ],
        ),
        (
            Method::POST,
            &recover,
            vec![
                (json!({"since": "2024-01-01T00:00:00Z\u{0}"}), "since"),
                (
                    json!({"since": "2024-01-01T00:00:00Z", "until": "\u{0}"}),
                    "until",
                ),
            ],
        ),
        (
            Method::POST,
            &test,
            vec![(json!({"payload": "\u{0}"}), "payload")],
        ),
    ];
    for (method, path, cases) in refused {
        for (body, field) in cases {
            let response = app
                .send(
                    method.clone(),
                    path,
                    Some(&key_for(path, &key)),
                    &[],
                    Some(to_bytes(&body)),
                )
                .await;
            response.assert_invalid_field(field, &format!("{method} {path} {body}"));
        }
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
