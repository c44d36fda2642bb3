//! Endpoint health (issue 3) from the client side: the health, alert,
//! disable and enable routes of [`TestApp`], and [`TenantEndpoint`], the
//! tenant-and-endpoint set-up the health scenarios share, with the calls
//! they repeat.

use std::time::Duration;

use serde_json::{json, Value};

use super::app::spawn_app;
use super::clients::{ApiResponse, TestApp};
use super::databases::TestDb;
use super::receivers::Receiver;
use super::values::data_of;
use super::waiting::{wait_until, DELIVERY_TIMEOUT};

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
        data_of(&body, "tenant health")
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

/// The `id` of an API object.
pub fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// Endpoint settings that keep the breaker, alerts and auto-disable out of
/// a scenario that is about something else, with `extra` on top.
pub fn quiet(extra: Value) -> Value {
    with(
        json!({
            "breaker_failures": 1000,
            "alert_thresholds": [1000],
            "disable_after_failures": 1000,
        }),
        extra,
    )
}

/// `base` with the fields of `extra` set on it.
pub fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object").clone() {
        base[k] = v;
    }
    base
}

/// The circuit state of a health view or of a tenant summary row (where the
/// contract does not say whether `circuit` is the state or an object).
pub fn circuit_state(row: &Value) -> String {
    match &row["circuit"] {
        Value::String(state) => state.clone(),
        other => other["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no circuit state in {row}"))
            .to_string(),
    }
}

/// A health-view check: the circuit is in `state`.
pub fn circuit_is(state: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    health_shows("/circuit/state", state)
}

/// A health-view check: the last failure was of `error_kind`.
pub fn last_failure_is(error_kind: &'static str) -> impl Fn(&Value) -> Result<(), String> {
    health_shows("/last_failure/error_kind", error_kind)
}

/// A health-view check: the string at JSON `pointer` is `expected`.
fn health_shows(
    pointer: &'static str,
    expected: &'static str,
) -> impl Fn(&Value) -> Result<(), String> {
    move |health: &Value| {
        if health.pointer(pointer) == Some(&json!(expected)) {
            Ok(())
        } else {
            Err(format!("{pointer} to be {expected}"))
        }
    }
}

/// Tenant `acme` and one endpoint of it: where an endpoint-health scenario
/// starts. Its methods are the calls such scenarios repeat, with the tenant,
/// key and endpoint filled in; they take the application as an argument, so
/// that the same endpoint can be followed across a restart.
pub struct TenantEndpoint {
    pub tenant: String,
    pub key: String,
    /// The endpoint as its creation answered it.
    pub created: Value,
    /// The endpoint's id.
    pub id: String,
}

/// The usual start of a health scenario: a receiver answering `status`,
/// hookrelay on `db`, and tenant `acme` with one endpoint on that receiver
/// with `settings` (its `url` is the receiver's).
pub async fn spawn_app_with_endpoint(
    db: TestDb,
    status: u16,
    settings: Value,
) -> (Receiver, TestApp, TenantEndpoint) {
    let receiver = Receiver::start();
    receiver.set_status(status);
    let app = spawn_app(db).await;
    let endpoint =
        TenantEndpoint::create(&app, with(json!({"url": receiver.url()}), settings)).await;
    (receiver, app, endpoint)
}

/// Where a failure scenario starts: [`spawn_app_with_endpoint`] with a
/// receiver answering 500 and an endpoint [`quiet`] but for `settings`.
pub async fn spawn_app_with_failing_endpoint(
    db: TestDb,
    settings: Value,
) -> (Receiver, TestApp, TenantEndpoint) {
    spawn_app_with_endpoint(db, 500, quiet(settings)).await
}

impl TenantEndpoint {
    /// Creates tenant `acme` and an endpoint of it with `body`.
    pub async fn create(app: &TestApp, body: Value) -> TenantEndpoint {
        let (tenant, key) = app.create_tenant("acme").await;
        let created = app.create_endpoint(&key, &tenant, body).await;
        let id = id_of(&created);
        TenantEndpoint {
            tenant,
            key,
            created,
            id,
        }
    }

    /// Creates another endpoint of the same tenant with `body`.
    pub async fn sibling(&self, app: &TestApp, body: Value) -> TenantEndpoint {
        let created = app.create_endpoint(&self.key, &self.tenant, body).await;
        TenantEndpoint {
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            id: id_of(&created),
            created,
        }
    }

    /// Publishes `n` events of type `invoice.paid` with ids `{prefix}_{i}`,
    /// each for this endpoint alone; returns the ids in publish order.
    pub async fn publish_numbered(&self, app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("{prefix}_{i}");
            let (got, deliveries) = app
                .publish_accepted(
                    &self.key,
                    &self.tenant,
                    &json!({"id": id, "type": "invoice.paid", "payload": {"n": i}}),
                )
                .await;
            assert_eq!(got, id);
            assert_eq!(deliveries, 1, "event {id} matches exactly one endpoint");
            ids.push(id);
        }
        ids
    }

    /// Its path in the API, `/v1/tenants/{t}/endpoints/{id}`.
    pub fn path(&self) -> String {
        format!("/v1/tenants/{}/endpoints/{}", self.tenant, self.id)
    }

    /// `PATCH`es it with `body`.
    pub async fn patch(&self, app: &TestApp, body: Value) -> ApiResponse {
        app.patch(&self.key, &self.path(), &body).await
    }

    /// The endpoint (`GET …/endpoints/{id}`).
    pub async fn view(&self, app: &TestApp) -> Value {
        app.get_endpoint(&self.key, &self.tenant, &self.id).await
    }

    /// Its health view.
    pub async fn health(&self, app: &TestApp) -> Value {
        app.endpoint_health(&self.key, &self.tenant, &self.id).await
    }

    /// Waits until its health view satisfies `check`; returns that view.
    pub async fn wait_for_health<F>(&self, app: &TestApp, timeout: Duration, check: F) -> Value
    where
        F: Fn(&Value) -> Result<(), String>,
    {
        app.wait_for_health(&self.key, &self.tenant, &self.id, timeout, check)
            .await
    }

    /// Waits until its circuit is in `state`; returns the health view.
    pub async fn wait_for_circuit(&self, app: &TestApp, state: &'static str) -> Value {
        self.wait_for_health(app, DELIVERY_TIMEOUT, circuit_is(state))
            .await
    }

    /// Waits until it is disabled; returns the endpoint.
    pub async fn wait_for_disabled(&self, app: &TestApp) -> Value {
        app.wait_for_disabled(&self.key, &self.tenant, &self.id)
            .await
    }

    /// `POST …/disable`.
    pub async fn disable(&self, app: &TestApp) -> ApiResponse {
        app.disable_endpoint(&self.key, &self.tenant, &self.id)
            .await
    }

    /// `POST …/enable` with `body`.
    pub async fn enable(&self, app: &TestApp, body: Value) -> ApiResponse {
        app.enable_endpoint(&self.key, &self.tenant, &self.id, &body)
            .await
    }

    /// `(id, state, attempt_count)` of each of its deliveries.
    pub async fn deliveries(&self, app: &TestApp) -> Vec<(String, String, i64)> {
        app.delivery_states(&self.key, &self.tenant, &self.id).await
    }

    /// Its deliveries in `state` (`GET …/deliveries?endpoint_id=..&state=..`).
    pub async fn deliveries_in(&self, app: &TestApp, state: &str) -> Vec<Value> {
        let query = format!("endpoint_id={}&state={state}", self.id);
        app.list_deliveries(&self.key, &self.tenant, &query).await
    }

    /// Waits until it has `count` deliveries, every one in `state`; returns
    /// them.
    pub async fn wait_all_deliveries(
        &self,
        app: &TestApp,
        count: usize,
        state: &str,
    ) -> Vec<(String, String, i64)> {
        wait_until(DELIVERY_TIMEOUT, || async {
            let deliveries = self.deliveries(app).await;
            if deliveries.len() == count && deliveries.iter().all(|(_, s, _)| s == state) {
                Ok(deliveries)
            } else {
                Err(format!(
                    "{count} deliveries of {} to be {state}, have {deliveries:?}",
                    self.id
                ))
            }
        })
        .await
    }

    /// The only delivery of `event`.
    pub async fn delivery_of(&self, app: &TestApp, event: &str) -> Value {
        let id = app.single_delivery_id(&self.key, &self.tenant, event).await;
        app.get_delivery(&self.key, &self.tenant, &id).await
    }

    /// Waits until the only delivery of each of `events` is in `state`;
    /// returns them in the order of `events`.
    pub async fn wait_for_deliveries_of(
        &self,
        app: &TestApp,
        events: &[String],
        state: &str,
    ) -> Vec<Value> {
        let mut deliveries = Vec::new();
        for event in events {
            let id = app.single_delivery_id(&self.key, &self.tenant, event).await;
            let delivery = app
                .wait_for_delivery_state(&self.key, &self.tenant, &id, state, DELIVERY_TIMEOUT)
                .await;
            deliveries.push(delivery);
        }
        deliveries
    }

    /// Its alerts, with an optional query string (`kind=..&since=..`).
    pub async fn alerts(&self, app: &TestApp, query: &str) -> Vec<Value> {
        let sep = if query.is_empty() { "" } else { "&" };
        let query = format!("endpoint_id={}{sep}{query}", self.id);
        app.list_alerts(&self.key, &self.tenant, &query).await
    }
}
