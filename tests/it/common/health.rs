//! Endpoint health (issue 3) from the client side: the health, alert,
//! disable and enable routes of [`TestApp`].

use std::time::Duration;

use serde_json::{json, Value};

use super::clients::{ApiResponse, TestApp};
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
