//! Keys and secrets, one module a capability: a tenant's API keys
//! ([`api_keys`]), endpoint secrets and their rotation ([`rotation`]), and
//! secrets encrypted at rest ([`encryption`]). Below, the calls they share.

mod api_keys;
mod encryption;
mod rotation;

use crate::common::{random_secret, ReceivedRequest, Receiver, TestApp, DELIVERY_TIMEOUT};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The string `field` of an API value.
fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
        .to_owned()
}

/// Creates an endpoint of `tenant` with `body`; returns its id.
async fn endpoint_id(app: &TestApp, key: &str, tenant: &str, body: Value) -> String {
    text(&app.create_endpoint(key, tenant, body).await, "id")
}

/// Creates tenant `acme` and an endpoint of it with `body`; returns the
/// tenant, its key and the endpoint's id.
async fn acme_endpoint(app: &TestApp, body: Value) -> (String, String, String) {
    let (tenant, key, endpoint) = app.create_tenant_with_endpoint(body).await;
    (tenant, key, text(&endpoint, "id"))
}

/// Creates tenant `acme` and an endpoint of it on `receiver` signing with
/// a fresh secret; returns the tenant, its key, the endpoint's id and the
/// secret.
async fn acme_endpoint_with_secret(
    app: &TestApp,
    receiver: &Receiver,
) -> (String, String, String, String) {
    let secret = random_secret();
    let body = json!({"url": receiver.url(), "secret": secret});
    let (tenant, key, ep) = acme_endpoint(app, body).await;
    (tenant, key, ep, secret)
}

/// `POST …/rotate-secret` with `body` (200 expected); returns the answer.
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

/// Rotates the secret of endpoint `ep` with a grace period of
/// `grace_seconds`; returns the new secret.
async fn rotated_secret(
    app: &TestApp,
    key: &str,
    tenant: &str,
    ep: &str,
    grace_seconds: u32,
) -> String {
    let body = json!({"grace_seconds": grace_seconds});
    text(&rotate(app, key, tenant, ep, &body).await, "secret")
}

/// Publishes one `invoice.paid` of `tenant` (202 expected).
async fn publish(app: &TestApp, key: &str, tenant: &str) {
    app.publish_event(key, tenant, "invoice.paid", json!({"n": 1}))
        .await;
}

/// Publishes one event and returns the `nth` request (from 1) `receiver`
/// has got: the one that event caused, when it had `nth - 1` before.
async fn publish_and_receive(
    app: &TestApp,
    key: &str,
    tenant: &str,
    receiver: &Receiver,
    nth: usize,
) -> ReceivedRequest {
    publish(app, key, tenant).await;
    receiver.wait_for_count(nth, DELIVERY_TIMEOUT).await[nth - 1].clone()
}
