//! Shared harness for the integration tests: throw-away databases on both
//! backends, an in-process hookrelay, a scriptable webhook receiver and a
//! Standard Webhooks signature verifier written from the specification.

use std::collections::VecDeque;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

/// Admin key given to every application the tests start.
pub const ADMIN_KEY: &str = "hr_test_admin_key_0123456789abcdef";

/// Generous bound for anything that has to travel through the delivery
/// pipeline (the machine is small and shared with other builds).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default PostgreSQL server used when `TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Turns scenarios `async fn name(db: TestDb)` into one test per backend.
///
/// `backend_tests!(name)` generates the module `name` holding the tests
/// `sqlite` and `postgres`, reported as `name::sqlite` and `name::postgres`
/// (a declarative macro cannot glue identifiers into `name_sqlite` without
/// an extra crate; modules and functions live in different namespaces so the
/// module can share the scenario's name). The PostgreSQL test returns early
/// with a notice when no server is reachable, unless `CI` is set.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                super::$name(crate::common::TestDb::sqlite()).await;
            }

            #[actix_rt::test]
            async fn postgres() {
                if let Some(db) = crate::common::TestDb::postgres() {
                    super::$name(db).await;
                }
            }
        }
    )+};
}

// ---------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------

/// A connection of a test's own to its database.
enum DirectConnection {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

enum DbKind {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

/// A fresh, empty database that lives as long as this value.
pub struct TestDb {
    url: String,
    kind: DbKind,
}

impl TestDb {
    /// A new SQLite file in its own temporary directory (so that the `-wal`
    /// and `-shm` companions are removed with it).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("hookrelay-test-")
            .tempdir()
            .expect("create temporary directory for the SQLite database");
        let path = dir.path().join("hookrelay.db");
        let path = path.to_str().expect("temporary path is UTF-8");
        TestDb {
            url: format!("sqlite://{path}"),
            kind: DbKind::Sqlite { _dir: dir },
        }
    }

    /// A new database `hr_test_<uuid>` on the server of `TEST_DATABASE_URL`.
    ///
    /// Returns `None` (after printing a notice) when the server cannot be
    /// reached, except when `CI` is set, where that is a failure.
    pub fn postgres() -> Option<TestDb> {
        use diesel::{Connection, RunQueryDsl};

        let admin_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_string());
        let mut conn = match diesel::PgConnection::establish(&with_connect_timeout(&admin_url)) {
            Ok(conn) => conn,
            Err(err) => {
                let why = format!("cannot connect to {admin_url}: {err}");
                if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
                    panic!("PostgreSQL is required when CI is set: {why}");
                }
                eprintln!("skipping postgres test: {why}");
                return None;
            }
        };
        let name = format!("hr_test_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL {admin_url:?} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        without_tls(&mut url);
        Some(TestDb {
            url: url.to_string(),
            kind: DbKind::Postgres { admin_url, name },
        })
    }

    /// The URL to hand to hookrelay (`DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.kind {
            DbKind::Sqlite { .. } => "sqlite",
            DbKind::Postgres { .. } => "postgres",
        }
    }

    /// Runs `sql` on the PostgreSQL server as the administrator, over a
    /// connection to the server's own database (so it works while this one
    /// refuses connections); returns the rows it affected or returned.
    pub fn execute_as_admin(&self, sql: &str) -> usize {
        use diesel::{Connection, RunQueryDsl};

        let DbKind::Postgres { admin_url, .. } = &self.kind else {
            panic!("execute_as_admin needs a PostgreSQL test database");
        };
        let mut conn = diesel::PgConnection::establish(&with_connect_timeout(admin_url))
            .unwrap_or_else(|e| panic!("connect to {admin_url}: {e}"));
        diesel::sql_query(sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs `sql` (statements separated by `;`) on this database over a
    /// connection of its own, beside the running application.
    pub fn execute_sql(&self, sql: &str) {
        use diesel::connection::SimpleConnection;

        let done = match self.connect() {
            DirectConnection::Sqlite(mut c) => c.batch_execute(sql),
            DirectConnection::Postgres(mut c) => c.batch_execute(sql),
        };
        done.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The `n` of the one row `sql` returns (`SELECT COUNT(*) AS n …`).
    pub fn count_sql(&self, sql: &str) -> i64 {
        use diesel::RunQueryDsl;

        let counted = match self.connect() {
            DirectConnection::Sqlite(mut c) => diesel::sql_query(sql).get_result::<Count>(&mut c),
            DirectConnection::Postgres(mut c) => diesel::sql_query(sql).get_result::<Count>(&mut c),
        };
        counted.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    fn connect(&self) -> DirectConnection {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;

        match self.url().strip_prefix("sqlite://") {
            Some(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .unwrap_or_else(|e| panic!("open {path}: {e}"));
                // The application writes at the same time.
                conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON")
                    .expect("set busy_timeout");
                DirectConnection::Sqlite(conn)
            }
            None => DirectConnection::Postgres(
                diesel::PgConnection::establish(self.url())
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url())),
            ),
        }
    }

    /// Closes every connection to this PostgreSQL database, as a failover
    /// does; returns how many there were.
    pub fn terminate_connections(&self) -> usize {
        let name = self.postgres_name();
        self.execute_as_admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
    }

    /// Whether this PostgreSQL database accepts new connections.
    pub fn allow_connections(&self, allowed: bool) {
        let name = self.postgres_name();
        self.execute_as_admin(&format!(
            "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS {allowed}"
        ));
    }

    fn postgres_name(&self) -> &str {
        match &self.kind {
            DbKind::Postgres { name, .. } => name,
            DbKind::Sqlite { .. } => panic!("a SQLite test database has no server"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use diesel::{Connection, RunQueryDsl};

        if let DbKind::Postgres { admin_url, name } = &self.kind {
            // Best effort: the application under test may still hold
            // connections, FORCE terminates them.
            let dropped = diesel::PgConnection::establish(&with_connect_timeout(admin_url))
                .map_err(|e| e.to_string())
                .and_then(|mut conn| {
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .map_err(|e| e.to_string())
                });
            if let Err(err) = dropped {
                eprintln!("could not drop test database {name}: {err}");
            }
        }
    }
}

/// Adds `connect_timeout=5` so an unroutable server cannot hang the tests.
fn with_connect_timeout(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.query_pairs().any(|(k, _)| k == "connect_timeout") {
                parsed.query_pairs_mut().append_pair("connect_timeout", "5");
            }
            without_tls(&mut parsed);
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Tests talk to PostgreSQL on loopback in plain text unless the URL says
/// otherwise. With libpq's default (`sslmode=prefer`) every connection,
/// including those a test's leftover writer threads retry while the test
/// process exits, goes through OpenSSL, whose exit-time clean-up they then
/// race: the test binary crashed with SIGSEGV after all tests had passed.
fn without_tls(url: &mut url::Url) {
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
}

// ---------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------

/// What a [`wait_until`] probe may answer: `bool`, `Option<T>` or
/// `Result<T, E>` (the error text of the last probe ends up in the panic).
pub trait Probe {
    type Output;
    fn into_result(self) -> Result<Self::Output, String>;
}

impl Probe for bool {
    type Output = ();
    fn into_result(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("condition still false".to_string())
        }
    }
}

impl<T> Probe for Option<T> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.ok_or_else(|| "condition still unmet".to_string())
    }
}

impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Output = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Calls `probe` every 50 ms until it succeeds; panics after `timeout` with
/// the last probe's explanation.
pub async fn wait_until<F, Fut, P>(timeout: Duration, mut probe: F) -> P::Output
where
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
    P: Probe,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await.into_result() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting: {last}");
                }
            }
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// The application under test
// ---------------------------------------------------------------------------

/// A running hookrelay (in-process, or the binary in the crash test) and a
/// client for its HTTP API.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub admin_key: String,
    pub client: reqwest::Client,
    /// Keeps the database alive as long as the application (in-process).
    pub db: Option<TestDb>,
}

/// A test HTTP client: never follows redirects, bounded per request.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // The service closes a keep-alive connection idle for 5 s; a request
        // sent on one at that moment fails ("error sending request"), so the
        // client lets idle connections go well before.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("build reqwest client")
}

/// Builds `hookrelay::startup::Application` on `db` with [`ADMIN_KEY`] and
/// serves it on the current actix system.
pub async fn spawn_app(db: TestDb) -> TestApp {
    let settings = test_settings(db.url());
    let application = hookrelay::startup::Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("Application::build on {}: {e:?}", db.backend()));
    let port = application.port();
    actix_rt::spawn(application.run_until_stopped());
    let mut app = TestApp::connect(&format!("http://127.0.0.1:{port}"), ADMIN_KEY);
    app.db = Some(db);
    app
}

/// A decoded API answer: status, content type and JSON body (`Null` when
/// the body is empty, `Value::String` with the raw text when it is not JSON).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The `Retry-After` header, when there is one.
    pub retry_after: Option<String>,
    pub body: Value,
}

impl ApiResponse {
    /// Asserts an RFC 7807 problem document with the given status.
    pub fn assert_problem(&self, status: u16, context: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{context}: expected status {status}, got {} with body {}",
            self.status,
            self.body
        );
        let ct = self.content_type.as_deref().unwrap_or("");
        assert!(
            ct.starts_with("application/problem+json"),
            "{context}: error content-type must be application/problem+json, got {ct:?} (body {})",
            self.body
        );
        assert_eq!(
            self.body["status"],
            json!(status),
            "{context}: problem body must repeat the status: {}",
            self.body
        );
        assert!(
            self.body["title"].is_string(),
            "{context}: problem body needs a title: {}",
            self.body
        );
        assert!(
            self.body["type"].is_string(),
            "{context}: problem body needs a type: {}",
            self.body
        );
    }

    /// Asserts a 422 problem naming `field`.
    pub fn assert_invalid_field(&self, field: &str, context: &str) {
        self.assert_problem(422, context);
        assert_eq!(
            self.body["field"],
            json!(field),
            "{context}: 422 must name the field {field:?}: {}",
            self.body
        );
    }
}

impl TestApp {
    /// A client for a hookrelay already listening at `address`.
    pub fn connect(address: &str, admin_key: &str) -> TestApp {
        TestApp {
            address: address.trim_end_matches('/').to_string(),
            admin_key: admin_key.to_string(),
            client: http_client(),
            db: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request; `body` is sent as JSON, `raw` as-is with a JSON
    /// content type. `key` goes into `Authorization: Bearer`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> ApiResponse {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(key) = key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading body failed: {e}"));
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        ApiResponse {
            status,
            content_type,
            retry_after,
            body,
        }
    }

    pub async fn get(&self, key: &str, path: &str) -> ApiResponse {
        self.send(Method::GET, path, Some(key), &[], None).await
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> ApiResponse {
        self.send(Method::POST, path, Some(key), &[], Some(to_bytes(body)))
            .await
    }

    pub async fn patch(&self, key: &str, path: &str, body: &Value) -> ApiResponse {
        self.send(Method::PATCH, path, Some(key), &[], Some(to_bytes(body)))
            .await
    }

    pub async fn delete(&self, key: &str, path: &str) -> ApiResponse {
        self.send(Method::DELETE, path, Some(key), &[], None).await
    }

    /// GET expecting 200; returns the JSON body.
    pub async fn get_json(&self, key: &str, path: &str) -> Value {
        let response = self.get(key, path).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "GET {path}: unexpected status, body {}",
            response.body
        );
        response.body
    }

    /// Creates tenant `id` as admin; returns `(id, api_key)`.
    pub async fn create_tenant(&self, id: &str) -> (String, String) {
        let response = self
            .post(
                &self.admin_key,
                "/v1/tenants",
                &json!({"id": id, "name": format!("Tenant {id}")}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "create tenant {id}: body {}",
            response.body
        );
        assert_eq!(response.body["id"], json!(id), "tenant id echoed back");
        let key = response.body["api_key"]
            .as_str()
            .unwrap_or_else(|| panic!("tenant has no api_key: {}", response.body))
            .to_string();
        (id.to_string(), key)
    }

    /// Creates an endpoint (expects 201) and returns it.
    pub async fn create_endpoint(&self, key: &str, tenant: &str, body: Value) -> Value {
        let path = format!("/v1/tenants/{tenant}/endpoints");
        let response = self.post(key, &path, &body).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "POST {path} {body}: body {}",
            response.body
        );
        assert!(
            response.body["id"].is_string(),
            "endpoint has an id: {}",
            response.body
        );
        response.body
    }

    /// Publishes an event; returns the raw answer (202 / 200 / problem).
    pub async fn publish(&self, key: &str, tenant: &str, body: &Value) -> ApiResponse {
        self.post(key, &format!("/v1/tenants/{tenant}/events"), body)
            .await
    }

    /// Publishes with an `Idempotency-Key` header.
    pub async fn publish_with_idempotency_key(
        &self,
        key: &str,
        tenant: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> ApiResponse {
        self.send(
            Method::POST,
            &format!("/v1/tenants/{tenant}/events"),
            Some(key),
            &[("Idempotency-Key", idempotency_key)],
            Some(to_bytes(body)),
        )
        .await
    }

    /// Publishes expecting 202; returns `(event id, deliveries)`.
    pub async fn publish_accepted(&self, key: &str, tenant: &str, body: &Value) -> (String, u64) {
        let response = self.publish(key, tenant, body).await;
        assert_eq!(
            response.status,
            StatusCode::ACCEPTED,
            "publish {body}: body {}",
            response.body
        );
        let id = response.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("publish answer has no id: {}", response.body))
            .to_string();
        let deliveries = response.body["deliveries"]
            .as_u64()
            .unwrap_or_else(|| panic!("publish answer has no deliveries: {}", response.body));
        (id, deliveries)
    }

    /// `GET /v1/tenants/{t}/events/{id}` (200 expected).
    pub async fn get_event(&self, key: &str, tenant: &str, id: &str) -> Value {
        self.get_json(key, &format!("/v1/tenants/{tenant}/events/{id}"))
            .await
    }

    /// `GET /v1/tenants/{t}/deliveries/{id}` (200 expected).
    pub async fn get_delivery(&self, key: &str, tenant: &str, id: &str) -> Value {
        self.get_json(key, &format!("/v1/tenants/{tenant}/deliveries/{id}"))
            .await
    }

    /// All deliveries of a tenant (first page of up to 1000), optionally
    /// filtered with a query string such as `endpoint_id=..&state=..`.
    pub async fn list_deliveries(&self, key: &str, tenant: &str, query: &str) -> Vec<Value> {
        self.first_page(key, tenant, "deliveries", query).await
    }

    /// The first page (up to 1000 items) of `GET /v1/tenants/{t}/{resource}`
    /// with an optional query string.
    pub async fn first_page(
        &self,
        key: &str,
        tenant: &str,
        resource: &str,
        query: &str,
    ) -> Vec<Value> {
        let sep = if query.is_empty() { "" } else { "&" };
        let list = self
            .get_json(
                key,
                &format!("/v1/tenants/{tenant}/{resource}?limit=1000{sep}{query}"),
            )
            .await;
        list["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{resource} list has no data array: {list}"))
            .clone()
    }

    /// The only delivery of an event.
    pub async fn single_delivery_id(&self, key: &str, tenant: &str, event_id: &str) -> String {
        let event = self.get_event(key, tenant, event_id).await;
        let deliveries = event["deliveries"]
            .as_array()
            .unwrap_or_else(|| panic!("event has no deliveries array: {event}"));
        assert_eq!(deliveries.len(), 1, "expected one delivery: {event}");
        deliveries[0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("delivery without id: {event}"))
            .to_string()
    }

    /// Polls a delivery until it reaches `state`; returns it (with attempts).
    pub async fn wait_for_delivery_state(
        &self,
        key: &str,
        tenant: &str,
        delivery_id: &str,
        state: &str,
        timeout: Duration,
    ) -> Value {
        wait_until(timeout, || async {
            let delivery = self.get_delivery(key, tenant, delivery_id).await;
            if delivery["state"] == json!(state) {
                Ok(delivery)
            } else {
                Err(format!(
                    "delivery {delivery_id} to reach state {state:?}, last seen {delivery}"
                ))
            }
        })
        .await
    }
}

pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

/// The attempts of a delivery, sorted by attempt number.
pub fn attempts_of(delivery: &Value) -> Vec<Value> {
    let mut attempts = delivery["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("delivery has no attempts array: {delivery}"))
        .clone();
    attempts.sort_by_key(|a| a["attempt"].as_i64().unwrap_or(i64::MAX));
    attempts
}

/// A random endpoint secret in the `whsec_<base64>` format.
pub fn random_secret() -> String {
    let bytes: Vec<u8> = (0..3)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .take(32)
        .collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// Signatures (Standard Webhooks, written from the specification)
// ---------------------------------------------------------------------------

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` with key the
/// base64-decoded secret after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| panic!("secret {secret:?} is not base64 after whsec_: {e}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Verifies a received request the way a Standard Webhooks consumer would:
/// the `webhook-signature` header (space-separated list) must contain a `v1`
/// signature of `webhook-id`, `webhook-timestamp` and the raw body.
pub fn verify_signature(secret: &str, request: &ReceivedRequest) -> Result<(), String> {
    let id = request.header("webhook-id").ok_or("no webhook-id header")?;
    let timestamp = request
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp header")?;
    let header = request
        .header("webhook-signature")
        .ok_or("no webhook-signature header")?;
    let expected = sign(secret, id, timestamp, &request.body);
    if header.split(' ').any(|candidate| candidate == expected) {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {header:?} does not contain {expected:?} (id {id:?}, timestamp {timestamp:?})"
        ))
    }
}

// ---------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "receiver got a non-JSON body ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Debug)]
struct Behaviour {
    status: u16,
    delay: Option<Duration>,
    location: Option<String>,
    retry_after: Option<String>,
    script: VecDeque<u16>,
    /// Raw answer body instead of `receiver says <status>`.
    body: Option<Vec<u8>>,
    /// Extra headers on every answer.
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct ReceiverState {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<ReceivedRequest>>,
    /// Requests being answered now, and the most there ever were at once.
    open: Mutex<(usize, usize)>,
}

/// A real HTTP server that plays a webhook consumer. It answers every
/// request according to its current behaviour (changeable at any time) and
/// records what it got.
pub struct Receiver {
    port: u16,
    state: Arc<ReceiverState>,
}

impl Receiver {
    /// Starts on 127.0.0.1 with a free port; must run inside an actix
    /// system. Answers 200 until told otherwise.
    pub fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            behaviour: Mutex::new(Behaviour {
                status: 200,
                delay: None,
                location: None,
                retry_after: None,
                script: VecDeque::new(),
                body: None,
                headers: Vec::new(),
            }),
            requests: Mutex::new(Vec::new()),
            open: Mutex::new((0, 0)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("receiver listens")
        .run();
        actix_rt::spawn(server);
        Receiver { port, state }
    }

    /// The URL to register as an endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Status for every request once the script is used up.
    pub fn set_status(&self, status: u16) {
        self.behaviour().status = status;
    }

    /// Statuses for the next requests, in order, before the default applies.
    pub fn script(&self, statuses: &[u16]) {
        self.behaviour().script = statuses.iter().copied().collect();
    }

    /// Waits this long before answering (the request is recorded first).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.behaviour().delay = delay;
    }

    /// Adds `Location` to every answer (use with a 3xx status).
    pub fn set_location(&self, location: Option<String>) {
        self.behaviour().location = location;
    }

    /// Adds `Retry-After` to every non-2xx answer.
    pub fn set_retry_after(&self, value: Option<String>) {
        self.behaviour().retry_after = value;
    }

    /// Answers with these raw bytes as the body (any bytes, e.g. a NUL).
    pub fn set_body(&self, body: Option<&[u8]>) {
        self.behaviour().body = body.map(<[u8]>::to_vec);
    }

    /// Adds these headers to every answer.
    pub fn set_headers(&self, headers: Vec<(String, String)>) {
        self.behaviour().headers = headers;
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// The most requests it was answering at one time.
    pub fn max_concurrent(&self) -> usize {
        self.state.open.lock().unwrap().1
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        wait_until(timeout, || async {
            let requests = self.requests();
            if requests.len() >= n {
                Ok(requests)
            } else {
                Err(format!(
                    "receiver {} to get {n} requests, it has {}",
                    self.url(),
                    requests.len()
                ))
            }
        })
        .await
    }

    fn behaviour(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        self.state.behaviour.lock().unwrap()
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<ReceiverState>>,
) -> HttpResponse {
    {
        let mut open = state.open.lock().unwrap();
        open.0 += 1;
        open.1 = open.1.max(open.0);
    }
    let response = answer(&request, body, &state).await;
    state.open.lock().unwrap().0 -= 1;
    response
}

async fn answer(request: &HttpRequest, body: web::Bytes, state: &ReceiverState) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.requests.lock().unwrap().push(ReceivedRequest {
        method: request.method().to_string(),
        path: request.path().to_string(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let (status, delay, location, retry_after, raw_body, extra_headers) = {
        let mut behaviour = state.behaviour.lock().unwrap();
        let status = behaviour.script.pop_front().unwrap_or(behaviour.status);
        (
            status,
            behaviour.delay,
            behaviour.location.clone(),
            behaviour.retry_after.clone(),
            behaviour.body.clone(),
            behaviour.headers.clone(),
        )
    };
    if let Some(delay) = delay {
        actix_rt::time::sleep(delay).await;
    }
    let status = actix_web::http::StatusCode::from_u16(status).expect("valid status code");
    let mut response = HttpResponse::build(status);
    if let Some(location) = location {
        response.insert_header(("Location", location));
    }
    for header in extra_headers {
        response.append_header(header);
    }
    if let Some(retry_after) = retry_after {
        if !status.is_success() {
            response.insert_header(("Retry-After", retry_after));
        }
    }
    match raw_body {
        Some(raw) => response.body(raw),
        None => response.body(format!("receiver says {}", status.as_u16())),
    }
}

// ---------------------------------------------------------------------------
// Endpoint health (issue 3): configurable applications, restarts, sick
// receivers and the health, alert, disable and enable routes.
// ---------------------------------------------------------------------------

/// The allow-list every test application runs with: the receivers are on
/// loopback, which the target policy refuses by default.
pub const LOOPBACK_TARGETS: &str = "127.0.0.0/8,::1/128";

/// The settings [`spawn_app`] uses: `db`, a free port, [`ADMIN_KEY`],
/// deliveries to [`LOOPBACK_TARGETS`] allowed.
pub fn test_settings(database_url: &str) -> hookrelay::config::Settings {
    let mut settings = hookrelay::config::Settings::new(database_url);
    settings.listen = "127.0.0.1:0".to_string();
    settings.admin_key = Some(ADMIN_KEY.to_string());
    settings.allow_targets = LOOPBACK_TARGETS
        .split(',')
        .map(|net| net.parse().expect("LOOPBACK_TARGETS are CIDRs"))
        .collect();
    settings
}

/// Like [`spawn_app`], with `configure` applied to the settings first.
pub async fn spawn_app_with(
    db: TestDb,
    configure: impl FnOnce(&mut hookrelay::config::Settings),
) -> TestApp {
    let mut settings = test_settings(db.url());
    configure(&mut settings);
    let application = hookrelay::startup::Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("Application::build on {}: {e:?}", db.backend()));
    let port = application.port();
    actix_rt::spawn(application.run_until_stopped());
    let mut app = TestApp::connect(&format!("http://127.0.0.1:{port}"), ADMIN_KEY);
    app.db = Some(db);
    app
}

/// Builds an application with `configure` applied and returns the build
/// error (its `Debug` text), or `Ok(())` when the build succeeded (the
/// application is then dropped without serving).
pub async fn try_build_app(
    database_url: &str,
    configure: impl FnOnce(&mut hookrelay::config::Settings),
) -> Result<(), String> {
    let mut settings = test_settings(database_url);
    configure(&mut settings);
    match hookrelay::startup::Application::build(settings).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{e:?} / {e}")),
    }
}

/// A hookrelay running in-process in its own thread and actix system, so
/// that it can be stopped (everything it runs is dropped, as in a crash)
/// and another one started on the same database: a restart.
pub struct RestartableApp {
    pub app: TestApp,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RestartableApp {
    /// Builds and serves hookrelay on `database_url` in a new thread.
    pub async fn start(
        database_url: &str,
        configure: impl FnOnce(&mut hookrelay::config::Settings),
    ) -> RestartableApp {
        let mut settings = test_settings(database_url);
        configure(&mut settings);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runner = actix_rt::System::new();
            let built = runner.block_on(async move {
                match hookrelay::startup::Application::build(settings).await {
                    Ok(application) => {
                        let port = application.port();
                        actix_rt::spawn(application.run_until_stopped());
                        Ok((port, actix_rt::System::current()))
                    }
                    Err(e) => Err(format!("{e:?}")),
                }
            });
            let ok = built.is_ok();
            let _ = tx.send(built);
            if ok {
                let _ = runner.run();
            }
        });
        let (port, system) = rx
            .await
            .expect("the application thread answers")
            .unwrap_or_else(|e| panic!("Application::build on {database_url}: {e}"));
        RestartableApp {
            app: TestApp::connect(&format!("http://127.0.0.1:{port}"), ADMIN_KEY),
            system,
            thread: Some(thread),
        }
    }

    /// Stops the application's actix system (its HTTP server, actors and
    /// timers are dropped, nothing is drained) and waits for its thread.
    pub async fn stop(mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            wait_until(Duration::from_secs(30), || async { thread.is_finished() }).await;
            let _ = thread.join();
        }
        // Let connections of the old process that were still open close.
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for RestartableApp {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.system.stop();
        }
    }
}

/// A loopback URL nobody listens on (a port bound, then released): every
/// attempt fails with a refused connection.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to release");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

/// Parses an RFC 3339 API timestamp (panics with `context` otherwise).
pub fn parse_time(value: &Value, context: &str) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{context}: expected an RFC 3339 string, got {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{context}: {text:?} is not RFC 3339: {e}"))
        .with_timezone(&chrono::Utc)
}

/// The wall-clock time of a received request (from its monotonic `at`).
pub fn wall_time(request: &ReceivedRequest) -> chrono::DateTime<chrono::Utc> {
    let age = request.at.elapsed();
    chrono::Utc::now() - chrono::Duration::from_std(age).expect("request age fits")
}

/// Requests whose body is an operational event (`type` starting with
/// `hookrelay.`).
pub fn operational_events(requests: &[ReceivedRequest]) -> Vec<ReceivedRequest> {
    requests
        .iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["type"].as_str().map(|t| t.starts_with("hookrelay.")))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}

impl Receiver {
    /// Answers `410 Gone` from now on.
    pub fn set_gone(&self) {
        self.set_status(410);
    }

    /// Answers after `delay` (use longer than the endpoint's timeout).
    pub fn set_hanging(&self, delay: Duration) {
        self.set_delay(Some(delay));
    }

    /// Answers 200 at once from now on.
    pub fn set_healthy(&self) {
        self.behaviour().script.clear();
        self.set_delay(None);
        self.set_status(200);
    }

    /// The `webhook-id` of every request, in arrival order.
    pub fn webhook_ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_string))
            .collect()
    }
}

impl TestApp {
    /// `GET /v1/tenants/{t}/endpoints/{id}/health` (200 expected).
    pub async fn endpoint_health(&self, key: &str, tenant: &str, endpoint: &str) -> Value {
        self.get_json(
            key,
            &format!("/v1/tenants/{tenant}/endpoints/{endpoint}/health"),
        )
        .await
    }

    /// `GET /v1/tenants/{t}/endpoints/{id}` (200 expected).
    pub async fn get_endpoint(&self, key: &str, tenant: &str, endpoint: &str) -> Value {
        self.get_json(key, &format!("/v1/tenants/{tenant}/endpoints/{endpoint}"))
            .await
    }

    /// `GET /v1/tenants/{t}/health` rows (200 expected).
    pub async fn tenant_health(&self, key: &str, tenant: &str) -> Vec<Value> {
        let body = self
            .get_json(key, &format!("/v1/tenants/{tenant}/health"))
            .await;
        body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("tenant health has no data array: {body}"))
            .clone()
    }

    /// `POST …/endpoints/{id}/disable` with `{}`.
    pub async fn disable_endpoint(&self, key: &str, tenant: &str, endpoint: &str) -> ApiResponse {
        self.post(
            key,
            &format!("/v1/tenants/{tenant}/endpoints/{endpoint}/disable"),
            &json!({}),
        )
        .await
    }

    /// `POST …/endpoints/{id}/enable` with `body`.
    pub async fn enable_endpoint(
        &self,
        key: &str,
        tenant: &str,
        endpoint: &str,
        body: &Value,
    ) -> ApiResponse {
        self.post(
            key,
            &format!("/v1/tenants/{tenant}/endpoints/{endpoint}/enable"),
            body,
        )
        .await
    }

    /// Alerts of a tenant (first page of up to 1000) with an optional query
    /// string (`endpoint_id=..&kind=..&since=..`).
    pub async fn list_alerts(&self, key: &str, tenant: &str, query: &str) -> Vec<Value> {
        self.first_page(key, tenant, "alerts", query).await
    }

    /// Waits until the endpoint's health view satisfies `check` (which
    /// explains itself with `Err`); returns that view.
    pub async fn wait_for_health<F>(
        &self,
        key: &str,
        tenant: &str,
        endpoint: &str,
        timeout: Duration,
        check: F,
    ) -> Value
    where
        F: Fn(&Value) -> Result<(), String>,
    {
        wait_until(timeout, || async {
            let health = self.endpoint_health(key, tenant, endpoint).await;
            match check(&health) {
                Ok(()) => Ok(health),
                Err(why) => Err(format!("{why}; health view {health}")),
            }
        })
        .await
    }

    /// Waits until the endpoint's status is `disabled`; returns the view.
    pub async fn wait_for_disabled(&self, key: &str, tenant: &str, endpoint: &str) -> Value {
        wait_until(DELIVERY_TIMEOUT, || async {
            let view = self.get_endpoint(key, tenant, endpoint).await;
            if view["status"] == json!("disabled") {
                Ok(view)
            } else {
                Err(format!("endpoint {endpoint} to be disabled: {view}"))
            }
        })
        .await
    }

    /// `(id, state, attempt_count)` of every delivery of `endpoint`.
    pub async fn delivery_states(
        &self,
        key: &str,
        tenant: &str,
        endpoint: &str,
    ) -> Vec<(String, String, i64)> {
        self.list_deliveries(key, tenant, &format!("endpoint_id={endpoint}"))
            .await
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap_or_default().to_string(),
                    d["state"].as_str().unwrap_or_default().to_string(),
                    d["attempt_count"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }
}
