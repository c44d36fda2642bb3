//! Signature schemes per endpoint: each receiver verifies deliveries the way
//! its scheme's public definition says (the verifiers here are written from
//! those definitions, not from hookrelay's signer), a scheme change applies
//! to the next attempt, and bad settings are refused without effect.

use crate::common::{
    random_secret, spawn_app, unix_now, verify_signature, ReceivedRequest, Receiver, TestApp,
    TestDb, DELIVERY_TIMEOUT,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

backend_tests!(
    each_scheme_signs_in_the_form_its_receiver_already_verifies,
    a_scheme_changed_by_patch_signs_the_next_attempt,
    bad_signature_settings_answer_422_naming_the_field_and_change_nothing,
);

/// GitHub's example secret: a plain string, used verbatim as the key.
const PLAIN_SECRET: &str = "It's a Secret to Everybody";

/// Lower-case hex HMAC-SHA256 of the concatenated `parts` under `key`.
fn hex_hmac(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header<'a>(request: &'a ReceivedRequest, name: &str) -> &'a str {
    request
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", request.headers))
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>`.
fn verify_github(secret: &str, request: &ReceivedRequest) {
    let expected = format!("sha256={}", hex_hmac(secret.as_bytes(), &[&request.body]));
    assert_eq!(header(request, "x-hub-signature-256"), expected);
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC(secret, "{t}.{body}")>`,
/// keyed with the whole secret string (`whsec_` included), timestamp recent.
fn verify_stripe(secret: &str, request: &ReceivedRequest) {
    let value = header(request, "stripe-signature");
    let item = |key: &str| {
        value
            .split(',')
            .find_map(|part| part.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in Stripe-Signature {value:?}"))
    };
    let t = item("t=");
    let seconds: i64 = t.parse().unwrap_or_else(|e| panic!("t={t:?}: {e}"));
    assert!((unix_now() - seconds).abs() < 300, "stale t={t}");
    let expected = hex_hmac(secret.as_bytes(), &[t.as_bytes(), b".", &request.body]);
    assert_eq!(item("v1="), expected, "Stripe-Signature {value:?}");
}

/// A plain hex HMAC of the body in `name`, optionally after `sha256=`.
fn verify_hex(secret: &str, name: &str, prefix: &str, request: &ReceivedRequest) {
    let expected = format!("{prefix}{}", hex_hmac(secret.as_bytes(), &[&request.body]));
    assert_eq!(header(request, name), expected);
}

fn assert_no_standard_signature(request: &ReceivedRequest) {
    assert_eq!(request.header("webhook-signature"), None, "{request:?}");
}

async fn publish_invoice_paid(app: &TestApp, key: &str, tenant: &str) {
    let published = app
        .publish(
            key,
            tenant,
            &json!({"type": "invoice.paid", "payload": {"invoice": "in_1", "note": "ünïcödé"}}),
        )
        .await;
    assert_eq!(published.status.as_u16(), 202, "{}", published.body);
}

async fn each_scheme_signs_in_the_form_its_receiver_already_verifies(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receivers: Vec<Receiver> = (0..5).map(|_| Receiver::start()).collect();
    let standard_secret = random_secret();
    // Stripe's own secrets look like ours; Stripe keys with the whole string.
    let stripe_secret = random_secret();
    let settings = [
        json!({"secret": standard_secret}),
        json!({"signature_scheme": "github", "secret": PLAIN_SECRET}),
        json!({"signature_scheme": "stripe", "secret": stripe_secret}),
        json!({"signature_scheme": "hex", "secret": PLAIN_SECRET}),
        json!({
            "signature_scheme": "hex",
            "secret": PLAIN_SECRET,
            "signature_header": "X-Fusion-Signature",
            "signature_sha256_prefix": true,
        }),
    ];
    let mut views = Vec::new();
    for (receiver, settings) in receivers.iter().zip(settings) {
        let mut body = settings;
        body["url"] = json!(receiver.url());
        views.push(app.create_endpoint(&key, &tenant, body).await);
    }
    let shown = |view: &Value| {
        (
            view["signature_scheme"].clone(),
            view["signature_header"].clone(),
            view["signature_sha256_prefix"].clone(),
        )
    };
    assert_eq!(
        shown(&views[0]),
        (
            json!("standard"),
            json!("X-Webhook-Signature"),
            json!(false)
        )
    );
    assert_eq!(
        shown(&views[4]),
        (json!("hex"), json!("X-Fusion-Signature"), json!(true))
    );
    assert_eq!(views[1]["secret"], json!(PLAIN_SECRET));

    publish_invoice_paid(&app, &key, &tenant).await;
    let mut received = Vec::new();
    for receiver in &receivers {
        let requests = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
        received.push(requests[0].clone());
    }

    verify_signature(&standard_secret, &received[0]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&received[0], "webhook-event-type"), "invoice.paid");

    verify_github(PLAIN_SECRET, &received[1]);
    verify_stripe(&stripe_secret, &received[2]);
    verify_hex(PLAIN_SECRET, "x-webhook-signature", "", &received[3]);
    verify_hex(PLAIN_SECRET, "x-fusion-signature", "sha256=", &received[4]);
    for request in &received[1..] {
        assert_no_standard_signature(request);
    }
}

async fn a_scheme_changed_by_patch_signs_the_next_attempt(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let secret = random_secret();
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "secret": secret, "retry_schedule": [5]}),
        )
        .await;
    let path = format!(
        "/v1/tenants/{tenant}/endpoints/{}",
        endpoint["id"].as_str().unwrap_or_default()
    );

    publish_invoice_paid(&app, &key, &tenant).await;
    let first = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    verify_signature(&secret, &first[0]).unwrap_or_else(|e| panic!("{e}"));

    // The retry is 5 s away: the change lands before it.
    let changed = app
        .patch_json(
            &key,
            &path,
            &json!({"signature_scheme": "github", "secret": PLAIN_SECRET}),
        )
        .await;
    assert_eq!(changed["signature_scheme"], json!("github"));

    let both = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    assert_eq!(
        both[1].body, first[0].body,
        "the retry carries the same body"
    );
    verify_github(PLAIN_SECRET, &both[1]);
    assert_no_standard_signature(&both[1]);
}

async fn bad_signature_settings_answer_422_naming_the_field_and_change_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receiver = Receiver::start();
    let url = receiver.url();
    let endpoints = format!("/v1/tenants/{tenant}/endpoints");
    let existing = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": url, "signature_scheme": "github", "secret": PLAIN_SECRET}),
        )
        .await;
    let existing_path = format!(
        "{endpoints}/{}",
        existing["id"].as_str().unwrap_or_default()
    );
    let before = app.get_json(&key, &endpoints).await["data"].clone();
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");

    // A signature header that is no header name, or one the sender sets.
    let bad_header = |name| json!({"signature_scheme": "hex", "signature_header": name});
    let refused = [
        (json!({"signature_scheme": "hmac"}), "signature_scheme"),
        (json!({"signature_scheme": 1}), "signature_scheme"),
        (bad_header("X Signature"), "signature_header"),
        (bad_header("Connection"), "signature_header"),
        (bad_header("webhook-signature"), "signature_header"),
        (bad_header("Content-Length"), "signature_header"),
        (
            json!({"signature_scheme": "github", "signature_header": "X-Sig"}),
            "signature_header",
        ),
        (
            json!({"signature_scheme": "hex", "signature_sha256_prefix": "yes"}),
            "signature_sha256_prefix",
        ),
        (
            json!({"signature_sha256_prefix": true}),
            "signature_sha256_prefix",
        ),
        (
            json!({"signature_scheme": "github", "secret": "tab\there"}),
            "secret",
        ),
        (
            json!({"signature_scheme": "stripe", "secret": ""}),
            "secret",
        ),
        (
            json!({"signature_scheme": "hex", "secret": PLAIN_SECRET,
                   "headers": {"x-webhook-signature": "forged"}}),
            "headers.x-webhook-signature",
        ),
    ];
    // The default scheme, standard, takes only whsec_ secrets.
    let plain_for_standard = (json!({"secret": PLAIN_SECRET}), "secret");
    for (fields, field) in refused.iter().chain([&plain_for_standard]) {
        let mut body = fields.clone();
        body["url"] = json!(url);
        let answer = app.post(&key, &endpoints, &body).await;
        answer.assert_invalid_field(field, &format!("POST {body}"));
    }

    // On PATCH: a scheme whose secret format the stored secret does not
    // meet, and each refusal above.
    let standard_again = json!({"signature_scheme": "standard"});
    let answer = app.patch(&key, &existing_path, &standard_again).await;
    answer.assert_invalid_field("secret", &format!("PATCH {standard_again}"));
    for (fields, field) in &refused {
        let answer = app.patch(&key, &existing_path, fields).await;
        answer.assert_invalid_field(field, &format!("PATCH {fields}"));
    }

    let after = app.get_json(&key, &endpoints).await["data"].clone();
    assert_eq!(after, before, "refused requests changed nothing");
}
