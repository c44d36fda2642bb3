//! The client side of the API: [`TestApp`] (a running hookrelay and the
//! calls a test makes on it) and the decoded [`ApiResponse`] with its
//! assertions.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::databases::TestDb;
use super::values::{data_of, to_bytes};
use super::waiting::{wait_until, DELIVERY_TIMEOUT};

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
        for member in ["title", "type"] {
            assert!(
                self.body[member].is_string(),
                "{context}: problem body needs a {member}: {}",
                self.body
            );
        }
    }

    /// Asserts a 200 answer whose body holds each `(pointer, value)`: the
    /// value at that JSON pointer (`/endpoint/status`), `null` when absent.
    pub fn assert_ok_with(&self, expected: &[(&str, Value)]) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        for (pointer, value) in expected {
            assert_eq!(
                self.body.pointer(pointer).unwrap_or(&Value::Null),
                value,
                "{pointer} in {}",
                self.body
            );
        }
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

    /// PATCH expecting 200; returns the JSON body.
    pub async fn patch_json(&self, key: &str, path: &str, body: &Value) -> Value {
        let response = self.patch(key, path, body).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "PATCH {path} {body}: unexpected status, body {}",
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

    /// Creates tenant `acme` and an endpoint of it with `body`: where most
    /// scenarios start. Returns the tenant, its key and the endpoint.
    pub async fn create_tenant_with_endpoint(&self, body: Value) -> (String, String, Value) {
        let (tenant, key) = self.create_tenant("acme").await;
        let endpoint = self.create_endpoint(&key, &tenant, body).await;
        (tenant, key, endpoint)
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

    /// Publishes an event of `event_type` with `payload` (202 expected);
    /// returns its id.
    pub async fn publish_event(
        &self,
        key: &str,
        tenant: &str,
        event_type: &str,
        payload: Value,
    ) -> String {
        let body = json!({"type": event_type, "payload": payload});
        self.publish_accepted(key, tenant, &body).await.0
    }

    /// Publishes `count` events of `event_type` with payloads `{"n": 0}`,
    /// `{"n": 1}`, …; returns their ids in publish order.
    pub async fn publish_events(
        &self,
        key: &str,
        tenant: &str,
        event_type: &str,
        count: usize,
    ) -> Vec<String> {
        let mut ids = Vec::new();
        for n in 0..count {
            ids.push(
                self.publish_event(key, tenant, event_type, json!({"n": n}))
                    .await,
            );
        }
        ids
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
        data_of(&list, resource)
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

    /// Waits until the only delivery of `event` reaches `state`; returns it
    /// (with attempts).
    pub async fn wait_for_single_delivery(
        &self,
        key: &str,
        tenant: &str,
        event: &str,
        state: &str,
    ) -> Value {
        let delivery = self.single_delivery_id(key, tenant, event).await;
        self.wait_for_delivery_state(key, tenant, &delivery, state, DELIVERY_TIMEOUT)
            .await
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
