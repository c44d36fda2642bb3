//! Secrets encrypted at rest with `HOOKRELAY_SECRET_KEY`: endpoint secrets
//! and credential headers sealed in the database and sent in clear, rows
//! written before the key sealed at the first start with it, and a bad key
//! refused at start-up.

use super::{
    acme_endpoint, acme_endpoint_with_secret, publish, publish_and_receive, rotated_secret, text,
};
use crate::common::{
    random_secret, try_build_app, verify_signature, wait_until, Receiver, RestartableApp, TestDb,
    DELIVERY_TIMEOUT,
};
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde_json::json;

backend_tests!(
    secrets_are_encrypted_at_rest_with_a_secret_key,
    plain_secrets_are_encrypted_at_the_first_start_with_a_key,
    credential_headers_are_sealed_at_rest_and_sent_in_clear,
    headers_marked_secret_are_masked_sealed_at_rest_and_sent_in_clear,
    an_invalid_secret_key_stops_start_up,
);

/// The base64 of 32 bytes, as `openssl rand -base64 32` prints.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

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

    let request = publish_and_receive(&first.app, &key, &tenant, &receiver, 1).await;
    verify_signature(&old, &request).unwrap_or_else(|e| panic!("{e}"));

    let new = rotated_secret(&first.app, &key, &tenant, &ep, 600).await;
    let stored = stored_secrets(&db, &ep);
    let previous = stored.previous_secret.expect("the replaced secret is kept");
    assert!(stored.secret.starts_with("enc:v1:"), "{}", stored.secret);
    assert!(previous.starts_with("enc:v1:"), "{previous}");
    assert!(!stored.secret.contains(&new[6..]) && !previous.contains(&old[6..]));
    first.stop().await;

    // Restarted with the key: both secrets still sign.
    let second = RestartableApp::start(db.url(), with_secret_key).await;
    let request = publish_and_receive(&second.app, &key, &tenant, &receiver, 2).await;
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
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let (tenant, key, ep, secret) = acme_endpoint_with_secret(&first.app, &receiver).await;
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
    let request = publish_and_receive(&second.app, &key, &tenant, &receiver, 1).await;
    verify_signature(&secret, &request).unwrap_or_else(|e| panic!("{e}"));
    second.stop().await;
}

async fn credential_headers_are_sealed_at_rest_and_sent_in_clear(db: TestDb) {
    const TOKEN: &str = "Bearer partner-prod-token";
    const API_KEY: &str = "k-0123456789";
    let receiver = Receiver::start();
    let first = RestartableApp::start(db.url(), |_| {}).await;
    let headers = json!({"Authorization": TOKEN, "X-Api-Key": API_KEY, "X-Tenant-Tag": "blue"});
    let (tenant, key, ep) = acme_endpoint(
        &first.app,
        json!({"url": receiver.url(), "headers": headers}),
    )
    .await;
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
    app.patch_json(
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
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains("partner-prod-token")
            && !dump.contains(API_KEY)
            && !dump.contains("cHJveHk6cGFzcw"),
        "no credential in clear after a PATCH: {dump}"
    );

    let request = publish_and_receive(app, &key, &tenant, &receiver, 1).await;
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
    let (tenant, key, ep) = acme_endpoint(
        app,
        json!({
            "url": receiver.url(),
            "headers": {"X-Partner-Ref": REFERENCE, "X-Tenant-Tag": "blue-tag"},
            "secret_headers": ["x-partner-REF"],
        }),
    )
    .await;
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
        .patch_json(
            &key,
            &path,
            &json!({"secret_headers": ["X-TENANT-TAG", "x-partner-ref"]}),
        )
        .await;
    assert_eq!(
        patched["secret_headers"],
        json!(["x-partner-ref", "x-tenant-tag"]),
        "{}",
        patched
    );
    assert_eq!(
        patched["headers"]["X-Tenant-Tag"],
        json!("********"),
        "{}",
        patched
    );
    let dump = stored_headers(&db, &ep);
    assert!(
        !dump.contains(REFERENCE) && !dump.contains("blue-tag"),
        "no marked value in clear: {dump}"
    );

    let request = publish_and_receive(app, &key, &tenant, &receiver, 1).await;
    assert_eq!(request.header("x-partner-ref"), Some(REFERENCE));
    assert_eq!(request.header("x-tenant-tag"), Some("blue-tag"));

    // Unmarked again, a value is shown and stored as it was given.
    let patched = app
        .patch_json(&key, &path, &json!({"secret_headers": []}))
        .await;
    assert_eq!(
        patched["headers"]["X-Tenant-Tag"],
        json!("blue-tag"),
        "{}",
        patched
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
