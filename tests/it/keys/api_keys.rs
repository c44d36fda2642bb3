//! A tenant's API keys: several per tenant, the key shown once, listed by
//! prefix a page at a time, revoked at once, its last use recorded; bad
//! requests refused; and a key stored by the previous version still
//! opening its tenant.

use super::text;
use crate::common::{parse_time, spawn_app, wait_until, TestApp, TestDb, DELIVERY_TIMEOUT};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    api_keys_are_created_listed_and_revoked,
    a_tenant_key_cannot_see_or_touch_another_tenants_keys,
    bad_key_requests_answer_422_naming_the_field_and_change_nothing,
    api_keys_are_listed_a_page_at_a_time_oldest_first,
    the_key_past_the_hundredth_is_a_422_naming_api_keys,
    a_key_stored_before_this_version_is_one_of_its_tenants_keys,
    a_keys_last_use_is_listed_once_it_has_authenticated_a_request,
);

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
    for (id, what) in [
        ("key_unknown", "an unknown"),
        ("not%20an%20id", "a malformed"),
    ] {
        app.delete(&key, &format!("{}/{id}", keys_path(&tenant)))
            .await
            .assert_problem(404, &format!("revoke {what} key id"));
    }
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
