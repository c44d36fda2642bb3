//! What a webhook consumer sees: the quickstart path, fan-out with event-type
//! filters, custom headers and signatures across retries, idempotent publish.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{
    attempts_of, random_secret, spawn_app, spawn_app_with_acme_endpoint, unix_now,
    verify_signature, wait_until, Receiver, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    publishing_an_event_delivers_a_signed_envelope,
    events_fan_out_only_to_endpoints_whose_filters_match,
    endpoint_headers_reach_the_receiver_and_webhook_id_is_stable_across_retries,
    publishing_the_same_event_twice_delivers_it_once,
);

/// The Standard Webhooks reference vector, to show the verifier used by the
/// other tests is itself right.
#[test]
fn signature_verifier_matches_the_standard_webhooks_test_vector() {
    assert_eq!(
        crate::common::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

async fn publishing_an_event_delivers_a_signed_envelope(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;

    let health = app
        .send(reqwest::Method::GET, "/healthz", None, &[], None)
        .await;
    assert_eq!(health.status, StatusCode::OK, "healthz: {}", health.body);
    assert_eq!(health.body, json!({"status": "ok"}));

    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "description": "quickstart"}))
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    assert_eq!(endpoint["tenant_id"], json!("acme"), "{endpoint}");
    assert_eq!(endpoint["url"], json!(receiver.url()), "{endpoint}");
    assert_eq!(endpoint["description"], json!("quickstart"), "{endpoint}");
    assert_eq!(endpoint["status"], json!("active"), "{endpoint}");
    assert_eq!(endpoint["timeout_seconds"], json!(30), "{endpoint}");
    assert_eq!(endpoint["max_in_flight"], json!(16), "{endpoint}");
    assert_eq!(
        endpoint["retry_schedule"],
        json!([5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]),
        "{endpoint}"
    );
    let secret = endpoint["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("endpoint has no secret: {endpoint}"))
        .to_string();
    assert!(secret.starts_with("whsec_"), "secret format: {secret}");

    let payload = json!({
        "invoice": "in_1001",
        "amount": 4200,
        "currency": "EUR",
        "lines": [{"sku": "A-1", "qty": 2}, {"sku": "ünïcödé ✓", "qty": 1}],
    });
    let published = app
        .publish(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": payload}),
        )
        .await;
    assert_eq!(
        published.status,
        StatusCode::ACCEPTED,
        "publish: {}",
        published.body
    );
    let event_id = published.body["id"].as_str().unwrap().to_string();
    assert_eq!(published.body["deliveries"], json!(1), "{}", published.body);

    // What the consumer receives.
    let requests = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    for (header, starts_with) in [
        ("content-type", "application/json"),
        ("user-agent", "hookrelay/"),
    ] {
        assert!(
            request
                .header(header)
                .is_some_and(|value| value.starts_with(starts_with)),
            "{header}: {:?}",
            request.header(header)
        );
    }
    assert_eq!(request.header("webhook-id"), Some(event_id.as_str()));
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "webhook-timestamp must be unix seconds: {:?}",
                request.header("webhook-timestamp")
            )
        });
    assert!(
        (timestamp - unix_now()).abs() < 300,
        "webhook-timestamp {timestamp} is not now ({})",
        unix_now()
    );
    verify_signature(&secret, request).unwrap();

    let envelope = request.json();
    assert_eq!(envelope["id"], json!(event_id), "{envelope}");
    assert_eq!(envelope["type"], json!("invoice.paid"), "{envelope}");
    assert_eq!(envelope["tenant_id"], json!("acme"), "{envelope}");
    assert_eq!(envelope["data"], payload, "{envelope}");
    let envelope_time = envelope["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("envelope timestamp must be an RFC 3339 string: {envelope}"));
    chrono::DateTime::parse_from_rfc3339(envelope_time)
        .unwrap_or_else(|e| panic!("envelope timestamp {envelope_time:?} is not RFC 3339: {e}"));

    // What the API says about it.
    let event = wait_until(DELIVERY_TIMEOUT, || async {
        let event = app.get_event(&key, &tenant, &event_id).await;
        if event["deliveries"][0]["state"] == json!("succeeded") {
            Ok(event)
        } else {
            Err(format!("event delivery to succeed: {event}"))
        }
    })
    .await;
    assert_eq!(event["id"], json!(event_id), "{event}");
    assert_eq!(event["type"], json!("invoice.paid"), "{event}");
    assert_eq!(event["payload"], payload, "{event}");
    assert!(event["timestamp"].is_string(), "{event}");
    let deliveries = event["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{event}");
    assert_eq!(deliveries[0]["endpoint_id"], json!(endpoint_id), "{event}");
    assert_eq!(deliveries[0]["attempt_count"], json!(1), "{event}");
    let delivery_id = deliveries[0]["id"].as_str().unwrap().to_string();

    let delivery = app.get_delivery(&key, &tenant, &delivery_id).await;
    assert_eq!(delivery["id"], json!(delivery_id), "{delivery}");
    assert_eq!(delivery["event_id"], json!(event_id), "{delivery}");
    assert_eq!(delivery["endpoint_id"], json!(endpoint_id), "{delivery}");
    assert_eq!(delivery["state"], json!("succeeded"), "{delivery}");
    assert_eq!(delivery["attempt_count"], json!(1), "{delivery}");
    let attempts = attempts_of(&delivery);
    assert_eq!(attempts.len(), 1, "{delivery}");
    assert_eq!(attempts[0]["status_code"], json!(200), "{delivery}");
    assert_eq!(attempts[0]["error_kind"], Value::Null, "{delivery}");
    assert!(attempts[0]["started_at"].is_string(), "{delivery}");
    assert!(attempts[0]["duration_ms"].is_number(), "{delivery}");

    let listed = app
        .list_deliveries(&key, &tenant, &format!("endpoint_id={endpoint_id}"))
        .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(delivery_id));
    assert_eq!(listed[0]["state"], json!("succeeded"));

    assert_eq!(receiver.count(), 1, "a succeeded delivery is sent once");
}

async fn events_fan_out_only_to_endpoints_whose_filters_match(db: TestDb) {
    let invoices = Receiver::start();
    let users = Receiver::start();
    let everything = Receiver::start();
    let app = spawn_app(db).await;
    let (tenant, key, invoice_ep) = app
        .create_tenant_with_endpoint(json!({"url": invoices.url(), "event_types": ["invoice.*"]}))
        .await;
    let user_ep = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": users.url(), "event_types": ["user.created"]}),
        )
        .await;
    let all_ep = app
        .create_endpoint(&key, &tenant, json!({"url": everything.url()}))
        .await;
    assert_eq!(invoice_ep["event_types"], json!(["invoice.*"]));
    assert_eq!(user_ep["event_types"], json!(["user.created"]));
    let id_of = |ep: &Value| ep["id"].as_str().unwrap().to_string();
    let (invoice_ep, user_ep, all_ep) = (id_of(&invoice_ep), id_of(&user_ep), id_of(&all_ep));

    let mut expected_targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (event_type, targets) in [
        ("invoice.paid", vec![&invoice_ep, &all_ep]),
        ("invoice.payment.failed", vec![&invoice_ep, &all_ep]),
        ("user.created", vec![&user_ep, &all_ep]),
    ] {
        let (id, deliveries) = app
            .publish_accepted(
                &key,
                &tenant,
                &json!({"type": event_type, "payload": {"kind": event_type}}),
            )
            .await;
        assert_eq!(
            deliveries,
            targets.len() as u64,
            "{event_type} must fan out to {} endpoints",
            targets.len()
        );
        expected_targets.insert(id, targets.into_iter().cloned().collect());
    }

    for (event_id, targets) in &expected_targets {
        let event = app.get_event(&key, &tenant, event_id).await;
        let actual: BTreeSet<String> = event["deliveries"]
            .as_array()
            .unwrap_or_else(|| panic!("event without deliveries: {event}"))
            .iter()
            .map(|d| d["endpoint_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(&actual, targets, "endpoints of event {event}");
    }

    wait_for_all_succeeded(&app, &key, &tenant, 6).await;

    let types_seen = |receiver: &Receiver| -> Vec<String> {
        let mut types: Vec<String> = receiver
            .requests()
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap().to_string())
            .collect();
        types.sort();
        types
    };
    assert_eq!(
        types_seen(&invoices),
        ["invoice.paid", "invoice.payment.failed"]
    );
    assert_eq!(types_seen(&users), ["user.created"]);
    assert_eq!(
        types_seen(&everything),
        ["invoice.paid", "invoice.payment.failed", "user.created"]
    );
}

async fn endpoint_headers_reach_the_receiver_and_webhook_id_is_stable_across_retries(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let secret = random_secret();
    // A retry delay of 2 s (at least 1.6 s with jitter) puts the two attempts
    // in different seconds, so their timestamps must differ.
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "secret": secret,
                "headers": {"X-Custom-Token": "abc123", "X-Tenant-Tag": "blue"},
                "retry_schedule": [2],
            }),
        )
        .await;
    assert_eq!(endpoint["secret"], json!(secret), "{endpoint}");
    assert_eq!(endpoint["retry_schedule"], json!([2]), "{endpoint}");
    let echoed: BTreeMap<String, String> = endpoint["headers"]
        .as_object()
        .unwrap_or_else(|| panic!("endpoint headers must be an object: {endpoint}"))
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
        .collect();
    // A credential-like header's value is sent, never shown.
    assert_eq!(
        echoed.get("x-custom-token").map(String::as_str),
        Some("********")
    );
    assert_eq!(echoed.get("x-tenant-tag").map(String::as_str), Some("blue"));

    let event_id = app
        .publish_event(&key, &tenant, "order.shipped", json!({"order": 7}))
        .await;

    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let (first, second) = (&requests[0], &requests[1]);
    for (n, request) in [first, second].into_iter().enumerate() {
        assert_eq!(
            request.header("x-custom-token"),
            Some("abc123"),
            "attempt {n}"
        );
        assert_eq!(request.header("x-tenant-tag"), Some("blue"), "attempt {n}");
        assert_eq!(
            request.header("webhook-id"),
            Some(event_id.as_str()),
            "attempt {n}"
        );
        verify_signature(&secret, request).unwrap_or_else(|e| panic!("attempt {n}: {e}"));
    }
    assert_eq!(
        first.body, second.body,
        "the envelope bytes are identical on every attempt"
    );
    let ts = |r: &crate::common::ReceivedRequest| -> i64 {
        r.header("webhook-timestamp")
            .and_then(|t| t.parse().ok())
            .expect("numeric webhook-timestamp")
    };
    assert!(
        ts(second) > ts(first),
        "webhook-timestamp is fresh per attempt: {} then {} (requests {:?} apart)",
        ts(first),
        ts(second),
        second.at - first.at
    );

    let delivery = app
        .wait_for_single_delivery(&key, &tenant, &event_id, "succeeded")
        .await;
    assert_eq!(delivery["attempt_count"], json!(2), "{delivery}");
}

async fn publishing_the_same_event_twice_delivers_it_once(db: TestDb) {
    let receiver = Receiver::start();
    let (app, tenant, key) = spawn_app_with_acme_endpoint(db, receiver.url()).await;

    // Client-chosen event id.
    let body = json!({"id": "evt_order_42", "type": "order.created", "payload": {"order": 42}});
    let first = app.publish(&key, &tenant, &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(first.body["id"], json!("evt_order_42"), "{}", first.body);
    assert_eq!(first.body["deliveries"], json!(1), "{}", first.body);
    let again = app.publish(&key, &tenant, &body).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "repeat of the same id: {}",
        again.body
    );
    assert_eq!(again.body["id"], json!("evt_order_42"), "{}", again.body);
    assert_eq!(again.body["deliveries"], json!(1), "{}", again.body);

    // Idempotency-Key header, server-chosen id.
    let body = json!({"type": "order.created", "payload": {"order": 43}});
    let first = app
        .publish_with_idempotency_key(&key, &tenant, "order-43-create", &body)
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let keyed_id = first.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {}", first.body))
        .to_string();
    assert_ne!(keyed_id, "evt_order_42");
    let again = app
        .publish_with_idempotency_key(&key, &tenant, "order-43-create", &body)
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "repeat of the same Idempotency-Key: {}",
        again.body
    );
    assert_eq!(again.body["id"], json!(keyed_id), "{}", again.body);
    assert_eq!(again.body["deliveries"], json!(1), "{}", again.body);

    wait_for_all_succeeded(&app, &key, &tenant, 2).await;
    let mut ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or("").to_string())
        .collect();
    ids.sort();
    let mut expected = vec!["evt_order_42".to_string(), keyed_id];
    expected.sort();
    assert_eq!(ids, expected, "each event is sent exactly once");
}

/// Waits until the tenant has exactly `count` deliveries, all succeeded.
async fn wait_for_all_succeeded(app: &TestApp, key: &str, tenant: &str, count: usize) {
    wait_until(DELIVERY_TIMEOUT, || async {
        let all = app.list_deliveries(key, tenant, "").await;
        let succeeded = all.iter().filter(|d| d["state"] == "succeeded").count();
        if all.len() == count && succeeded == count {
            Ok(())
        } else {
            Err(format!(
                "exactly {count} succeeded deliveries, have {} ({succeeded} succeeded)",
                all.len()
            ))
        }
    })
    .await;
}
