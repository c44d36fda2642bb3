//! Keys and secrets: several API keys per tenant (the key shown once,
//! listed by prefix, revoked at once), endpoint secrets kept out of views,
//! rotation with a grace period during which receivers verify either
//! secret (verifiers written from each scheme's definition), and secrets
//! encrypted at rest with `HOOKRELAY_SECRET_KEY`.

use crate::common::{
    parse_time, random_secret, spawn_app, try_build_app, unix_now, verify_signature, wait_until,
    ReceivedRequest, Receiver, RestartableApp, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

backend_tests!(
    api_keys_are_created_listed_and_revoked,
    a_tenant_key_cannot_see_or_touch_another_tenants_keys,
    bad_key_requests_answer_422_naming_the_field_and_change_nothing,
    api_keys_are_listed_a_page_at_a_time_oldest_first,
    the_key_past_the_hundredth_is_a_422_naming_api_keys,
    the_secret_is_shown_at_creation_and_by_its_route_only,
    a_rotation_signs_with_both_secrets_until_its_grace_period_ends,
    a_rotation_survives_a_restart,
    a_secret_set_by_patch_ends_the_grace_period,
    bad_rotations_answer_422_naming_the_field_and_change_nothing,
    secrets_are_encrypted_at_rest_with_a_secret_key,
    plain_secrets_are_encrypted_at_the_first_start_with_a_key,
    credential_headers_are_sealed_at_rest_and_sent_in_clear,
    headers_marked_secret_are_masked_sealed_at_rest_and_sent_in_clear,
    an_invalid_secret_key_stops_start_up,
    a_key_stored_before_this_version_is_one_of_its_tenants_keys,
    a_keys_last_use_is_listed_once_it_has_authenticated_a_request,
);

/// The base64 of 32 bytes, as `openssl rand -base64 32` prints.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn keys_path(tenant: &str) -> String {
    format!("/v1/tenants/{tenant}/api-keys")
}

async fn create_key(app: &TestApp, key: &str, tenant: &str, body: &Value) -> Value {
    let response = app.post(key, &keys_path(tenant), body).await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "create key: {}",
        response.body
    );
    response.body
}

async fn list_keys(app: &TestApp, key: &str, tenant: &str) -> Vec<Value> {
    let listed = app.get_json(key, &keys_path(tenant)).await;
    listed["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a key list has data: {listed}"))
        .clone()
}

fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
        .to_owned()
}

async fn assert_key_works(app: &TestApp, key: &str, tenant: &str) {
    let response = app
        .get(key, &format!("/v1/tenants/{tenant}/endpoints"))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
}

async fn assert_key_refused(app: &TestApp, key: &str, tenant: &str, context: &str) {
    let response = app
        .get(key, &format!("/v1/tenants/{tenant}/endpoints"))
        .await;
    response.assert_problem(401, context);
}

async fn api_keys_are_created_listed_and_revoked(db: TestDb) {
    let app = spawn_app(db).await;
    let created_tenant = app
        .post(
            &app.admin_key,
            "/v1/tenants",
            &json!({"id": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(created_tenant.status, StatusCode::CREATED);
    let (tenant, first_key) = ("acme", text(&created_tenant.body, "api_key"));
    let first_id = text(&created_tenant.body, "api_key_id");

    // A tenant's key creates another; it works at once.
    let created = create_key(&app, &first_key, tenant, &json!({"name": "ci"})).await;
    let ci_key = text(&created, "key");
    let ci_id = text(&created, "id");
    assert!(ci_key.starts_with("hrk_"), "{created}");
    assert_eq!(created["name"], json!("ci"));
    assert_eq!(created["prefix"], json!(&ci_key[..12]));
    assert_key_works(&app, &ci_key, tenant).await;

    // The list names both keys by id, name and prefix: no key, no digest.
    let listed = list_keys(&app, &ci_key, tenant).await;
    let ids: Vec<String> = listed.iter().map(|k| text(k, "id")).collect();
    assert_eq!(ids, [first_id.clone(), ci_id.clone()]);
    assert_eq!(listed[0]["prefix"], json!(&first_key[..12]));
    for shown in &listed {
        let mut fields: Vec<&String> = shown.as_object().expect("object").keys().collect();
        fields.sort();
        assert_eq!(
            fields,
            ["created_at", "id", "last_used_at", "name", "prefix"],
            "{shown}"
        );
    }
    let whole = serde_json::to_string(&listed).expect("serialize");
    assert!(
        !whole.contains(&ci_key) && !whole.contains(&first_key),
        "{whole}"
    );

    // Revoked: refused at once, and refused again (from memory).
    let revoked = app
        .delete(&first_key, &format!("{}/{ci_id}", keys_path(tenant)))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_key_refused(&app, &ci_key, tenant, "a revoked key").await;
    assert_key_refused(&app, &ci_key, tenant, "a revoked key, asked again").await;
    app.delete(&first_key, &format!("{}/{ci_id}", keys_path(tenant)))
        .await
        .assert_problem(404, "revoking a revoked key");
    assert_eq!(list_keys(&app, &first_key, tenant).await.len(), 1);

    // Unknown keys are refused, every time.
    for attempt in 0..3 {
        assert_key_refused(
            &app,
            "hrk_never_issued",
            tenant,
            &format!("unknown #{attempt}"),
        )
        .await;
    }

    // A tenant may revoke its last key; the admin gives it another.
    let revoked = app
        .delete(&first_key, &format!("{}/{first_id}", keys_path(tenant)))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_key_refused(&app, &first_key, tenant, "the last key, revoked").await;
    assert!(list_keys(&app, &app.admin_key, tenant).await.is_empty());
    let fresh = create_key(&app, &app.admin_key, tenant, &json!({})).await;
    assert_eq!(fresh["name"], Value::Null);
    assert_key_works(&app, &text(&fresh, "key"), tenant).await;
}

async fn a_tenant_key_cannot_see_or_touch_another_tenants_keys(db: TestDb) {
    let app = spawn_app(db).await;
    let (a, a_key) = app.create_tenant("tenant-a").await;
    let (b, b_key) = app.create_tenant("tenant-b").await;
    let b_id = text(&list_keys(&app, &b_key, &b).await[0], "id");

    app.get(&a_key, &keys_path(&b))
        .await
        .assert_problem(404, "list another tenant's keys");
    app.post(&a_key, &keys_path(&b), &json!({}))
        .await
        .assert_problem(404, "create a key for another tenant");
    app.delete(&a_key, &format!("{}/{b_id}", keys_path(&b)))
        .await
        .assert_problem(404, "revoke another tenant's key");
    app.delete(&a_key, &format!("{}/{b_id}", keys_path(&a)))
        .await
        .assert_problem(404, "revoke another tenant's key under one's own tenant");
    assert_key_works(&app, &b_key, &b).await;
    assert_eq!(list_keys(&app, &b_key, &b).await.len(), 1);
    // A key created for one tenant opens nothing of another.
    let a_second = text(&create_key(&app, &a_key, &a, &json!({})).await, "key");
    app.get(&a_second, &format!("/v1/tenants/{b}/endpoints"))
        .await
        .assert_problem(404, "a new key on another tenant");
}

async fn bad_key_requests_answer_422_naming_the_field_and_change_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "two\nlines"}), "name"),
        (json!({"name": "x".repeat(257)}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"colour": "blue"}), "colour"),
    ] {
        app.post(&key, &keys_path(&tenant), &body)
            .await
            .assert_invalid_field(field, &format!("create key {body}"));
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%00", "cursor"),
        ("cursor=a%20b", "cursor"),
        ("bogus=1", "bogus"),
        ("limit=2&limit=3", "limit"),
    ] {
        app.get(&key, &format!("{}?{query}", keys_path(&tenant)))
            .await
            .assert_invalid_field(field, &format!("list keys ?{query}"));
    }
    app.get(&app.admin_key, "/v1/tenants?bogus=1")
        .await
        .assert_invalid_field("bogus", "list tenants ?bogus=1");
    assert_eq!(list_keys(&app, &key, &tenant).await.len(), 1);
    app.delete(&key, &format!("{}/key_unknown", keys_path(&tenant)))
        .await
        .assert_problem(404, "revoke an unknown key");
    app.delete(&key, &format!("{}/not%20an%20id", keys_path(&tenant)))
        .await
        .assert_problem(404, "revoke a malformed key id");
}

async fn api_keys_are_listed_a_page_at_a_time_oldest_first(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let mut created = vec![text(&list_keys(&app, &key, &tenant).await[0], "id")];
    for name in ["b", "c", "d"] {
        created.push(text(
            &create_key(&app, &key, &tenant, &json!({ "name": name })).await,
            "id",
        ));
    }
    let first = app
        .get_json(&key, &format!("{}?limit=3", keys_path(&tenant)))
        .await;
    let cursor = text(&first, "next");
    let second = app
        .get_json(
            &key,
            &format!("{}?limit=3&cursor={cursor}", keys_path(&tenant)),
        )
        .await;
    assert_eq!(second["next"], Value::Null, "the last page: {second}");
    let listed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["data"].as_array().cloned().unwrap_or_default())
        .map(|key| text(&key, "id"))
        .collect();
    assert_eq!(listed, created, "every key once, oldest first");
    assert_eq!(
        list_keys(&app, &key, &tenant).await.len(),
        4,
        "one page by default"
    );
}

async fn the_key_past_the_hundredth_is_a_422_naming_api_keys(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    // The tenant's first key is the hundredth with these.
    for _ in 0..99 {
        create_key(&app, &key, &tenant, &json!({})).await;
    }
    let refused = app.post(&key, &keys_path(&tenant), &json!({})).await;
    refused.assert_invalid_field("api_keys", "the 101st key");
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("100"), "{}", refused.body);
    let listed = app
        .get_json(&key, &format!("{}?limit=1000", keys_path(&tenant)))
        .await;
    assert_eq!(
        listed["data"].as_array().map(Vec::len),
        Some(100),
        "nothing added"
    );
}

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
        .patch(&key, &path, &json!({"description": "billing"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    for (what, shown) in [
        ("view", &viewed),
        ("list", &listed),
        ("patch", &patched.body),
    ] {
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
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
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
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn rotate(app: &TestApp, key: &str, tenant: &str, ep: &str, body: &Value) -> Value {
    let response = app
        .post(
            key,
            &format!("/v1/tenants/{tenant}/endpoints/{ep}/rotate-secret"),
            body,
        )
        .await;
    assert_eq!(response.status, StatusCode::OK, "rotate: {}", response.body);
    response.body
}

async fn publish(app: &TestApp, key: &str, tenant: &str) {
    app.publish_accepted(
        key,
        tenant,
        &json!({"type": "invoice.paid", "payload": {"n": 1}}),
    )
    .await;
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
        endpoints.push(text(&app.create_endpoint(&key, &tenant, body).await, "id"));
    }

    let grace = json!({"grace_seconds": 5});
    let new_standard = text(
        &rotate(&app, &key, &tenant, &endpoints[0], &grace).await,
        "secret",
    );
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
    let new_github = text(
        &rotate(&app, &key, &tenant, &endpoints[2], &grace).await,
        "secret",
    );
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
    publish(&app, &key, &tenant).await;
    let during: Vec<ReceivedRequest> = {
        let mut got = Vec::new();
        for receiver in &receivers {
            got.push(receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone());
        }
        got
    };
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
    publish(&app, &key, &tenant).await;
    let after: Vec<ReceivedRequest> = {
        let mut got = Vec::new();
        for receiver in &receivers {
            got.push(receiver.wait_for_count(2, DELIVERY_TIMEOUT).await[1].clone());
        }
        got
    };
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
    let old = random_secret();
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let ep = text(
        &first
            .app
            .create_endpoint(&key, &tenant, json!({"url": receiver.url(), "secret": old}))
            .await,
        "id",
    );
    let new = text(
        &rotate(
            &first.app,
            &key,
            &tenant,
            &ep,
            &json!({"grace_seconds": 600}),
        )
        .await,
        "secret",
    );
    first.stop().await;

    let second = RestartableApp::start(db.url(), |_| {}).await;
    publish(&second.app, &key, &tenant).await;
    let request = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    verify_signature(&new, &request).unwrap_or_else(|e| panic!("new: {e}"));
    verify_signature(&old, &request).unwrap_or_else(|e| panic!("old, after the restart: {e}"));
    second.stop().await;
}

async fn a_secret_set_by_patch_ends_the_grace_period(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receiver = Receiver::start();
    let old = random_secret();
    let ep = text(
        &app.create_endpoint(&key, &tenant, json!({"url": receiver.url(), "secret": old}))
            .await,
        "id",
    );
    let rotated = text(
        &rotate(&app, &key, &tenant, &ep, &json!({"grace_seconds": 600})).await,
        "secret",
    );
    publish(&app, &key, &tenant).await;
    let first = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    verify_signature(&rotated, &first).unwrap_or_else(|e| panic!("rotated: {e}"));
    verify_signature(&old, &first).unwrap_or_else(|e| panic!("old: {e}"));

    let replaced = random_secret();
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");
    let patched = app.patch(&key, &path, &json!({"secret": replaced})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let shown = app.get_json(&key, &format!("{path}/secret")).await;
    assert_eq!(shown["secret"], json!(replaced));
    assert_eq!(shown["previous_secret_expires_at"], Value::Null, "{shown}");
    publish(&app, &key, &tenant).await;
    let second = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await[1].clone();
    verify_signature(&replaced, &second).unwrap_or_else(|e| panic!("replaced: {e}"));
    assert_eq!(signature_entries(&second), 1, "{:?}", second.headers);
}

async fn bad_rotations_answer_422_naming_the_field_and_change_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    let receiver = Receiver::start();
    let secret = random_secret();
    let ep = text(
        &app.create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "secret": secret}),
        )
        .await,
        "id",
    );
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
    let github = text(
        &app.create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "signature_scheme": "github", "secret": "s3cret"}),
        )
        .await,
        "id",
    );
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

#[derive(QueryableByName)]
struct StoredSecrets {
    #[diesel(sql_type = Text)]
    secret: String,
    #[diesel(sql_type = Nullable<Text>)]
    previous_secret: Option<String>,
}

#[derive(QueryableByName)]
struct StoredHeaders {
    #[diesel(sql_type = Text)]
    headers: String,
}

/// The secret columns of endpoint `id`, read from the database directly.
fn stored_secrets(db: &TestDb, id: &str) -> StoredSecrets {
    let sql = format!("SELECT secret, previous_secret FROM endpoints WHERE id = '{id}'");
    read_row(db, &sql)
}

/// The custom headers of endpoint `id` as a database dump shows them.
fn stored_headers(db: &TestDb, id: &str) -> String {
    let sql = format!("SELECT headers FROM endpoints WHERE id = '{id}'");
    read_row::<StoredHeaders>(db, &sql).headers
}

fn read_row<Row>(db: &TestDb, sql: &str) -> Row
where
    Row: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    let read = match db.url().strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = diesel::SqliteConnection::establish(path)
                .unwrap_or_else(|e| panic!("open {path}: {e}"));
            diesel::sql_query(sql).get_result(&mut conn)
        }
        None => {
            let mut conn = diesel::PgConnection::establish(db.url())
                .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url()));
            diesel::sql_query(sql).get_result(&mut conn)
        }
    };
    read.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn with_secret_key(settings: &mut hookrelay::config::Settings) {
    settings.secret_key = Some(SECRET_KEY.to_owned());
}

async fn secrets_are_encrypted_at_rest_with_a_secret_key(db: TestDb) {
    let receiver = Receiver::start();
    let old = random_secret();
    let first = RestartableApp::start(db.url(), with_secret_key).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let created = first
        .app
        .create_endpoint(&key, &tenant, json!({"url": receiver.url(), "secret": old}))
        .await;
    let ep = text(&created, "id");
    let stored = stored_secrets(&db, &ep);
    assert!(stored.secret.starts_with("enc:v1:"), "{}", stored.secret);
    assert!(!stored.secret.contains(&old[6..]));

    publish(&first.app, &key, &tenant).await;
    let request = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    verify_signature(&old, &request).unwrap_or_else(|e| panic!("{e}"));

    let new = text(
        &rotate(
            &first.app,
            &key,
            &tenant,
            &ep,
            &json!({"grace_seconds": 600}),
        )
        .await,
        "secret",
    );
    let stored = stored_secrets(&db, &ep);
    let previous = stored.previous_secret.expect("the replaced secret is kept");
    assert!(stored.secret.starts_with("enc:v1:"), "{}", stored.secret);
    assert!(previous.starts_with("enc:v1:"), "{previous}");
    assert!(!stored.secret.contains(&new[6..]) && !previous.contains(&old[6..]));
    first.stop().await;

    // Restarted with the key: both secrets still sign.
    let second = RestartableApp::start(db.url(), with_secret_key).await;
    publish(&second.app, &key, &tenant).await;
    let request = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await[1].clone();
    verify_signature(&new, &request).unwrap_or_else(|e| panic!("new: {e}"));
    verify_signature(&old, &request).unwrap_or_else(|e| panic!("old: {e}"));
    let shown = second
        .app
        .get_json(&key, &format!("/v1/tenants/{tenant}/endpoints/{ep}/secret"))
        .await;
    assert_eq!(shown["secret"], json!(new));
    second.stop().await;

    // Restarted without it: the service runs, nothing is sent unsigned, and
    // the endpoint says why.
    let third = RestartableApp::start(db.url(), |_| {}).await;
    let app = &third.app;
    publish(app, &key, &tenant).await;
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");
    wait_until(DELIVERY_TIMEOUT, || async {
        let view = app.get_json(&key, &path).await;
        match view["stats"]["last_error"].as_str() {
            Some(error) if error.contains("HOOKRELAY_SECRET_KEY") => Ok(()),
            _ => Err(format!("last_error naming the missing key: {view}")),
        }
    })
    .await;
    assert_eq!(receiver.count(), 2, "nothing sent without its signature");
    app.get(&key, &format!("{path}/secret"))
        .await
        .assert_problem(409, "a secret this instance cannot decrypt");
    third.stop().await;
}

async fn plain_secrets_are_encrypted_at_the_first_start_with_a_key(db: TestDb) {
    let receiver = Receiver::start();
    let secret = random_secret();
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let ep = text(
        &first
            .app
            .create_endpoint(
                &key,
                &tenant,
                json!({"url": receiver.url(), "secret": secret}),
            )
            .await,
        "id",
    );
    assert_eq!(
        stored_secrets(&db, &ep).secret,
        secret,
        "stored plain without a key"
    );
    first.stop().await;

    // The operator's alert endpoint, written at every start, is sealed too.
    let alerts = Receiver::start();
    let alert_secret = random_secret();
    let second = RestartableApp::start(db.url(), |settings| {
        with_secret_key(settings);
        settings.alert_url = Some(alerts.url());
        settings.alert_secret = Some(alert_secret.clone());
    })
    .await;
    let stored = stored_secrets(&db, &ep);
    assert!(stored.secret.starts_with("enc:v1:"), "{}", stored.secret);
    let operator = stored_secrets(&db, "ep_operator_alerts");
    assert!(
        operator.secret.starts_with("enc:v1:"),
        "{}",
        operator.secret
    );
    publish(&second.app, &key, &tenant).await;
    let request = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    verify_signature(&secret, &request).unwrap_or_else(|e| panic!("{e}"));
    second.stop().await;
}

async fn credential_headers_are_sealed_at_rest_and_sent_in_clear(db: TestDb) {
    const TOKEN: &str = "Bearer partner-prod-token";
    const API_KEY: &str = "k-0123456789";
    let receiver = Receiver::start();
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let headers = json!({"Authorization": TOKEN, "X-Api-Key": API_KEY, "X-Tenant-Tag": "blue"});
    let ep = text(
        &first
            .app
            .create_endpoint(
                &key,
                &tenant,
                json!({"url": receiver.url(), "headers": headers}),
            )
            .await,
        "id",
    );
    assert!(
        stored_headers(&db, &ep).contains(TOKEN),
        "stored plain without a key"
    );
    first.stop().await;

    // The first start with a key seals the rows written before it.
    let second = RestartableApp::start(db.url(), with_secret_key).await;
    let app = &second.app;
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains("partner-prod-token") && !dump.contains(API_KEY),
        "no credential in clear: {dump}"
    );
    assert!(dump.contains("enc:v1:") && dump.contains("blue"), "{dump}");
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");
    let view = app.get_json(&key, &path).await;
    assert_eq!(
        view["headers"]["Authorization"],
        json!("********"),
        "{view}"
    );
    assert_eq!(view["headers"]["X-Api-Key"], json!("********"), "{view}");

    // A PATCH keeps a sealed value sent back masked, and seals a new one.
    let patched = app
        .patch(
            &key,
            &path,
            &json!({"headers": {
                "Authorization": "********",
                "X-Api-Key": API_KEY,
                "X-Auth-Token": "tok-cHJveHk6cGFzcw",
                "X-Tenant-Tag": "green",
            }}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains("partner-prod-token")
            && !dump.contains(API_KEY)
            && !dump.contains("cHJveHk6cGFzcw"),
        "no credential in clear after a PATCH: {dump}"
    );

    publish(app, &key, &tenant).await;
    let request = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    assert_eq!(request.header("authorization"), Some(TOKEN));
    assert_eq!(request.header("x-api-key"), Some(API_KEY));
    assert_eq!(request.header("x-auth-token"), Some("tok-cHJveHk6cGFzcw"));
    assert_eq!(request.header("x-tenant-tag"), Some("green"));
    second.stop().await;
}

async fn headers_marked_secret_are_masked_sealed_at_rest_and_sent_in_clear(db: TestDb) {
    const REFERENCE: &str = "partner-ref-7f3a9c";
    let receiver = Receiver::start();
    let service = RestartableApp::start(db.url(), with_secret_key).await;
    let app = &service.app;
    let (tenant, key) = app.create_tenant("acme").await;
    let ep = text(
        &app.create_endpoint(
            &key,
            &tenant,
            json!({
                "url": receiver.url(),
                "headers": {"X-Partner-Ref": REFERENCE, "X-Tenant-Tag": "blue-tag"},
                "secret_headers": ["x-partner-REF"],
            }),
        )
        .await,
        "id",
    );
    let path = format!("/v1/tenants/{tenant}/endpoints/{ep}");
    let view = app.get_json(&key, &path).await;
    assert_eq!(
        view["headers"]["X-Partner-Ref"],
        json!("********"),
        "{view}"
    );
    assert_eq!(view["headers"]["X-Tenant-Tag"], json!("blue-tag"), "{view}");
    assert_eq!(view["secret_headers"], json!(["x-partner-ref"]), "{view}");
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains(REFERENCE) && dump.contains("enc:v1:") && dump.contains("blue-tag"),
        "only the marked value is sealed: {dump}"
    );

    // Marking a stored header seals its value; bad names change nothing.
    for (body, field) in [
        (json!({"secret_headers": ["bad name"]}), "secret_headers[0]"),
        (
            json!({"secret_headers": (0..51).map(|n| format!("x-h{n}")).collect::<Vec<_>>()}),
            "secret_headers",
        ),
    ] {
        app.patch(&key, &path, &body)
            .await
            .assert_invalid_field(field, &format!("{body}"));
    }
    let patched = app
        .patch(
            &key,
            &path,
            &json!({"secret_headers": ["X-TENANT-TAG", "x-partner-ref"]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["secret_headers"],
        json!(["x-partner-ref", "x-tenant-tag"]),
        "{}",
        patched.body
    );
    assert_eq!(
        patched.body["headers"]["X-Tenant-Tag"],
        json!("********"),
        "{}",
        patched.body
    );
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains(REFERENCE) && !dump.contains("blue-tag"),
        "no marked value in clear: {dump}"
    );

    publish(app, &key, &tenant).await;
    let request = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await[0].clone();
    assert_eq!(request.header("x-partner-ref"), Some(REFERENCE));
    assert_eq!(request.header("x-tenant-tag"), Some("blue-tag"));

    // Unmarked again, a value is shown and stored as it was given.
    let patched = app.patch(&key, &path, &json!({"secret_headers": []})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["headers"]["X-Tenant-Tag"],
        json!("blue-tag"),
        "{}",
        patched.body
    );
    assert!(stored_headers(&db, &ep).contains(REFERENCE));
    service.stop().await;
}

async fn an_invalid_secret_key_stops_start_up(db: TestDb) {
    for bad in ["not base64!", "c2hvcnQ="] {
        let refused = try_build_app(db.url(), |settings| {
            settings.secret_key = Some(bad.to_owned());
        })
        .await
        .expect_err("an invalid HOOKRELAY_SECRET_KEY is refused");
        assert!(refused.contains("HOOKRELAY_SECRET_KEY"), "{refused}");
    }
}

/// The migration that introduced keys and secrets; those before it sort
/// before its name in `migrations/`.
const KEYS_MIGRATION: &str = "2026-12-01-005000_keys_and_secrets";

fn migrations_before_keys() -> usize {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    std::fs::read_dir(directory)
        .unwrap_or_else(|e| panic!("read {directory}: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.as_str() < KEYS_MIGRATION)
        .count()
}

/// A tenant and its key as the previous version stored them.
const LEGACY_DATA: &str = "
    INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', 1);
    INSERT INTO api_keys (key_hash, tenant_id, created_at) VALUES
        ('1fd7b86b062eb8164d2df7e18df62afa0d4d62b96d744dd0dfc8d0c114782a02', 'acme', 1);
";

fn migrate_to_the_previous_version(db: &TestDb) {
    let migrations =
        FileBasedMigrations::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("the migrations directory");
    macro_rules! previous_version {
        ($conn:expr) => {{
            let mut conn = $conn;
            for _ in 0..migrations_before_keys() {
                conn.run_next_migration(migrations.clone())
                    .unwrap_or_else(|e| panic!("migrate: {e}"));
            }
            conn.batch_execute(LEGACY_DATA)
                .unwrap_or_else(|e| panic!("legacy rows: {e}"));
        }};
    }
    match db.url().strip_prefix("sqlite://") {
        Some(path) => previous_version!(diesel::SqliteConnection::establish(path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"))),
        None => previous_version!(diesel::PgConnection::establish(db.url())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url()))),
    }
}

async fn a_key_stored_before_this_version_is_one_of_its_tenants_keys(db: TestDb) {
    migrate_to_the_previous_version(&db);
    // LEGACY_DATA holds this key's SHA-256.
    let legacy_key = hookrelay::ids::key_hash("hrk_legacy");
    assert!(
        LEGACY_DATA.contains(&legacy_key),
        "LEGACY_DATA must hold sha256(\"hrk_legacy\") = {legacy_key}"
    );
    let app = spawn_app(db).await;
    assert_key_works(&app, "hrk_legacy", "acme").await;
    let listed = list_keys(&app, "hrk_legacy", "acme").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(format!("key_{}", &legacy_key[..32])));
    assert_eq!(
        listed[0]["prefix"],
        Value::Null,
        "its plaintext was never stored"
    );
    let revoked = app
        .delete(
            &app.admin_key,
            &format!("{}/{}", keys_path("acme"), text(&listed[0], "id")),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_key_refused(&app, "hrk_legacy", "acme", "the legacy key, revoked").await;
}

async fn a_keys_last_use_is_listed_once_it_has_authenticated_a_request(db: TestDb) {
    let backend = db.backend();
    let app = spawn_app(db).await;
    let (tenant, _unused_key) = app.create_tenant("acme").await;
    // Created and listed with the admin's key, which is no tenant's key.
    let created = create_key(&app, &app.admin_key, &tenant, &json!({"name": "ci"})).await;
    assert_eq!(created["last_used_at"], Value::Null, "{backend}: {created}");
    let (ci_key, ci_id) = (text(&created, "key"), text(&created, "id"));
    let listed = list_keys(&app, &app.admin_key, &tenant).await;
    assert_eq!(listed.len(), 2, "{backend}: {listed:?}");
    for key in &listed {
        assert_eq!(
            key["last_used_at"],
            Value::Null,
            "{backend}: a fresh key: {key}"
        );
    }

    // Stored times are in whole milliseconds.
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    assert_key_works(&app, &ci_key, &tenant).await;
    // Written after the answer, off the request.
    let listed = wait_until(DELIVERY_TIMEOUT, || async {
        let listed = list_keys(&app, &app.admin_key, &tenant).await;
        let ci = listed.iter().find(|key| key["id"] == json!(ci_id));
        if ci.is_some_and(|key| key["last_used_at"].is_string()) {
            Ok(listed)
        } else {
            Err(format!("the use of ci to be listed: {listed:?}"))
        }
    })
    .await;
    for key in &listed {
        if key["id"] == json!(ci_id) {
            let used_at = parse_time(&key["last_used_at"], "last_used_at");
            assert!(
                before <= used_at && used_at <= chrono::Utc::now(),
                "{backend}: used at {used_at}, the request was sent after {before}"
            );
        } else {
            assert_eq!(
                key["last_used_at"],
                Value::Null,
                "{backend}: a key that was not used: {key}"
            );
        }
    }
}
