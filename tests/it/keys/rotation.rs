//! Endpoint secrets: shown at creation and by their own route only, and
//! rotated with a grace period during which receivers verify either secret
//! (verifiers written from each scheme's definition).

use super::{
    acme_endpoint_with_secret, endpoint_id, publish, publish_and_receive, rotate, rotated_secret,
    text,
};
use crate::common::{
    random_secret, spawn_app, unix_now, verify_signature, wait_until, ReceivedRequest, Receiver,
    RestartableApp, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

backend_tests!(
    the_secret_is_shown_at_creation_and_by_its_route_only,
    a_rotation_signs_with_both_secrets_until_its_grace_period_ends,
    a_rotation_survives_a_restart,
    a_secret_set_by_patch_ends_the_grace_period,
    bad_rotations_answer_422_naming_the_field_and_change_nothing,
);

async fn the_secret_is_shown_at_creation_and_by_its_route_only(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let (other, other_key) = app.create_tenant("other").await;
    let receiver = Receiver::start();
    let secret = random_secret();
    let created = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "secret": secret}),
        )
        .await;
    assert_eq!(created["secret"], json!(secret), "shown at creation");
    let ep = text(&created, "id");
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");

    let viewed = app.get_json(&key, &path).await;
    let listed = app
        .get_json(&key, &format!("/v1/tenants/{tenant}/endpoints"))
        .await;
    let patched = app
        .patch_json(&key, &path, &json!({"description": "billing"}))
        .await;
    for (what, shown) in [("view", &viewed), ("list", &listed), ("patch", &patched)] {
        let whole = shown.to_string();
        assert!(!whole.contains(&secret), "{what} shows the secret: {whole}");
        assert!(
            !whole.contains("\"secret\""),
            "{what} has a secret field: {whole}"
        );
    }

    let shown = app.get_json(&key, &format!("{path}/secret")).await;
    assert_eq!(shown["secret"], json!(secret));
    assert_eq!(shown["previous_secret_expires_at"], Value::Null);
    app.get(
        &other_key,
        &format!("/v1/tenants/{other}/endpoints/{ep}/secret"),
    )
    .await
    .assert_problem(404, "another tenant's endpoint secret");
    app.get(&other_key, &format!("{path}/secret"))
        .await
        .assert_problem(404, "another tenant's secret route");
}

/// The MAC's digest in lower-case hex, as both Stripe and GitHub write it.
fn hex_digest(mac: Hmac<Sha256>) -> String {
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `v1` entries of a `Stripe-Signature` header and its `t`, checked
/// against Stripe's definition: hex HMAC-SHA256 of `{t}.{body}` keyed with
/// the whole secret string.
fn stripe_verifies(secret: &str, request: &ReceivedRequest) -> bool {
    let value = request
        .header("stripe-signature")
        .unwrap_or_else(|| panic!("no Stripe-Signature in {:?}", request.headers));
    let t = value
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .unwrap_or_else(|| panic!("no t= in {value:?}"));
    let seconds: i64 = t.parse().unwrap_or_else(|e| panic!("t={t:?}: {e}"));
    assert!((unix_now() - seconds).abs() < 300, "stale t={t}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = hex_digest(mac);
    value
        .split(',')
        .filter_map(|part| part.strip_prefix("v1="))
        .any(|candidate| candidate == expected)
}

fn signature_entries(request: &ReceivedRequest) -> usize {
    request
        .header("webhook-signature")
        .map_or(0, |value| value.split(' ').count())
}

/// The GitHub scheme's signature of the request under `secret`.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex_digest(mac))
}

/// Publishes one event and returns the `nth` request (from 1) each of
/// `receivers` has got.
async fn publish_and_receive_at_each(
    app: &TestApp,
    key: &str,
    tenant: &str,
    receivers: &[Receiver],
    nth: usize,
) -> Vec<ReceivedRequest> {
    publish(app, key, tenant).await;
    let mut got = Vec::new();
    for receiver in receivers {
        got.push(receiver.wait_for_count(nth, DELIVERY_TIMEOUT).await[nth - 1].clone());
    }
    got
}

async fn a_rotation_signs_with_both_secrets_until_its_grace_period_ends(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receivers: Vec<Receiver> = (0..3).map(|_| Receiver::start()).collect();
    let old = [
        random_secret(),
        random_secret(),
        "github's old secret".to_owned(),
    ];
    let schemes = ["standard", "stripe", "github"];
    let mut endpoints = Vec::new();
    for ((receiver, secret), scheme) in receivers.iter().zip(&old).zip(schemes) {
        let body = json!({"url": receiver.url(), "secret": secret, "signature_scheme": scheme});
        endpoints.push(endpoint_id(&app, &key, &tenant, body).await);
    }

    let new_standard = rotated_secret(&app, &key, &tenant, &endpoints[0], 5).await;
    let given = random_secret();
    let rotated = rotate(
        &app,
        &key,
        &tenant,
        &endpoints[1],
        &json!({"secret": given, "grace_seconds": 5}),
    )
    .await;
    assert_eq!(rotated["secret"], json!(given));
    let expires = crate::common::parse_time(
        &rotated["previous_secret_expires_at"],
        "previous_secret_expires_at",
    );
    let new_github = rotated_secret(&app, &key, &tenant, &endpoints[2], 5).await;
    assert_ne!(new_standard, old[0]);
    assert!(new_standard.starts_with("whsec_"), "{new_standard}");
    let shown = app
        .get_json(
            &key,
            &format!("/v1/tenants/{tenant}/endpoints/{}/secret", endpoints[0]),
        )
        .await;
    assert_eq!(shown["secret"], json!(new_standard));

    // During the grace period: both secrets verify where the scheme
    // carries several signatures; GitHub's single one is the new secret's.
    let during = publish_and_receive_at_each(&app, &key, &tenant, &receivers, 1).await;
    let during_at = chrono::Utc::now();
    assert!(
        during_at < expires,
        "the first deliveries arrived after the grace period ({during_at} ≥ {expires}): the machine is too slow for this test"
    );
    verify_signature(&new_standard, &during[0]).unwrap_or_else(|e| panic!("new: {e}"));
    verify_signature(&old[0], &during[0]).unwrap_or_else(|e| panic!("old: {e}"));
    assert_eq!(signature_entries(&during[0]), 2);
    assert!(stripe_verifies(&given, &during[1]), "{:?}", during[1]);
    assert!(stripe_verifies(&old[1], &during[1]), "{:?}", during[1]);
    assert_eq!(
        during[2].header("x-hub-signature-256"),
        Some(github_signature(&new_github, &during[2].body).as_str())
    );

    // After it: the new secret alone. Wait for the stored end to pass.
    wait_until(Duration::from_secs(10), || async {
        let now = chrono::Utc::now();
        if now > expires + chrono::Duration::milliseconds(100) {
            Ok(())
        } else {
            Err(format!("the grace period to end at {expires}, now {now}"))
        }
    })
    .await;
    let after = publish_and_receive_at_each(&app, &key, &tenant, &receivers, 2).await;
    verify_signature(&new_standard, &after[0]).unwrap_or_else(|e| panic!("new: {e}"));
    assert!(verify_signature(&old[0], &after[0]).is_err());
    assert_eq!(signature_entries(&after[0]), 1);
    assert!(stripe_verifies(&given, &after[1]));
    assert!(!stripe_verifies(&old[1], &after[1]));
    assert_eq!(
        after[2].header("x-hub-signature-256"),
        Some(github_signature(&new_github, &after[2].body).as_str())
    );
    let shown = app
        .get_json(
            &key,
            &format!("/v1/tenants/{tenant}/endpoints/{}/secret", endpoints[1]),
        )
        .await;
    assert_eq!(shown["previous_secret_expires_at"], Value::Null, "{shown}");
}

async fn a_rotation_survives_a_restart(db: TestDb) {
    let receiver = Receiver::start();
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key, ep, old) = acme_endpoint_with_secret(&first.app, &receiver).await;
    let new = rotated_secret(&first.app, &key, &tenant, &ep, 600).await;
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    let request = publish_and_receive(&second.app, &key, &tenant, &receiver, 1).await;
    verify_signature(&new, &request).unwrap_or_else(|e| panic!("new: {e}"));
    verify_signature(&old, &request).unwrap_or_else(|e| panic!("old, after the restart: {e}"));
    second.stop().await;
}

async fn a_secret_set_by_patch_ends_the_grace_period(db: TestDb) {
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key, ep, old) = acme_endpoint_with_secret(&app, &receiver).await;
    let rotated = rotated_secret(&app, &key, &tenant, &ep, 600).await;
    let first = publish_and_receive(&app, &key, &tenant, &receiver, 1).await;
    verify_signature(&rotated, &first).unwrap_or_else(|e| panic!("rotated: {e}"));
    verify_signature(&old, &first).unwrap_or_else(|e| panic!("old: {e}"));

    let replaced = random_secret();
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");
    app.patch_json(&key, &path, &json!({"secret": replaced}))
        .await;
    let shown = app.get_json(&key, &format!("{path}/secret")).await;
    assert_eq!(shown["secret"], json!(replaced));
    assert_eq!(shown["previous_secret_expires_at"], Value::Null, "{shown}");
    let second = publish_and_receive(&app, &key, &tenant, &receiver, 2).await;
    verify_signature(&replaced, &second).unwrap_or_else(|e| panic!("replaced: {e}"));
    assert_eq!(signature_entries(&second), 1, "{:?}", second.headers);
}

async fn bad_rotations_answer_422_naming_the_field_and_change_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key, ep, secret) = acme_endpoint_with_secret(&app, &receiver).await;
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}/rotate-secret");
    for (body, field) in [
        (json!({"grace_seconds": 604_801}), "grace_seconds"),
        (json!({"grace_seconds": -1}), "grace_seconds"),
        (json!({"grace_seconds": "1"}), "grace_seconds"),
        (json!({"secret": "not a whsec secret"}), "secret"),
        (json!({"secret": "whsec_!!!"}), "secret"),
        (json!({"colour": "blue"}), "colour"),
    ] {
        app.post(&key, &path, &body)
            .await
            .assert_invalid_field(field, &format!("rotate {body}"));
    }
    let shown = app
        .get_json(&key, &format!("/v1/tenants/{tenant}/endpoints/{ep}/secret"))
        .await;
    assert_eq!(
        shown["secret"],
        json!(secret),
        "refused rotations change nothing"
    );
    // A plain-secret scheme refuses a secret that would read as encrypted.
    let github = endpoint_id(
        &app,
        &key,
        &tenant,
        json!({"url": receiver.url(), "signature_scheme": "github", "secret": "s3cret"}),
    )
    .await;
    app.post(
        &key,
        &format!("/v1/tenants/{tenant}/endpoints/{github}/rotate-secret"),
        &json!({"secret": "enc:v1:abc"}),
    )
    .await
    .assert_invalid_field("secret", "a secret that reads as encrypted");
    // The full 7 days is allowed; 0 replaces the secret outright.
    rotate(&app, &key, &tenant, &ep, &json!({"grace_seconds": 604_800})).await;
    let outright = rotate(&app, &key, &tenant, &ep, &json!({"grace_seconds": 0})).await;
    assert_eq!(outright["previous_secret_expires_at"], Value::Null);
}
