//! A write the database refuses never comes from us, and bad input never
//! becomes a 500, one module a kind of input: bytes such as NUL, stored and
//! delivered or refused with a 422 naming the field ([`nul_bytes`]); ids
//! that cannot exist (404s) and methods a path does not serve (405s)
//! ([`routes`]); and SIGTERM, which ends the process within the grace
//! period ([`sigterm`]).

mod nul_bytes;
mod routes;
mod sigterm;

use crate::common::{id_of, with, Receiver, TestApp};
use serde_json::{json, Value};

/// A tenant, an endpoint on `receiver`, and the tenant's key.
async fn tenant_with_endpoint(
    app: &TestApp,
    receiver: &Receiver,
    extra: Value,
) -> (String, String, String) {
    let (tenant, key) = app.create_tenant("acme").await;
    let body = with(json!({"url": receiver.url()}), extra);
    let endpoint = id_of(&app.create_endpoint(&key, &tenant, body).await);
    (tenant, key, endpoint)
}
