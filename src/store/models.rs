//! Rows as stored. JSON-valued columns hold text; conversion to domain
//! values lives beside the queries that read them.

use super::schema::{
    alerts, api_keys, attempts, deliveries, endpoint_health, endpoints, events, tenants,
};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub key_hash: String,
    pub tenant_id: Option<String>,
    pub created_at: i64,
    pub id: String,
    pub name: Option<String>,
    /// The key's first characters, to recognise it; `None` for keys
    /// created before they were kept.
    pub prefix: Option<String>,
    /// When the key last authenticated a request, written at most once a
    /// minute (`api::auth`); `None` until then.
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = endpoints)]
pub struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub headers: String,
    pub secret: String,
    pub timeout_seconds: i32,
    pub max_in_flight: i32,
    pub retry_schedule: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub breaker_failures: Option<i32>,
    pub breaker_cooldown_seconds: Option<i64>,
    pub breaker_max_cooldown_seconds: Option<i64>,
    /// JSON array of counts.
    pub alert_thresholds: Option<String>,
    pub disable_after_failures: Option<i32>,
    pub disable_after_seconds: Option<i64>,
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
    pub signature_scheme: String,
    pub signature_header: String,
    pub signature_sha256_prefix: bool,
    pub http_method: String,
    /// `false`: a 4xx other than 408 and 429 fails the delivery at once.
    pub retry_client_errors: bool,
    /// JSON object of strings, the user's own labels.
    pub metadata: String,
    /// The secret a rotation replaced: it signs too until
    /// `previous_secret_expires_at`. Both secret columns hold the stored
    /// form ([`crate::core::secrets::secret_box`]): plain, or sealed.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    /// Attempts a second at most; `None`: no limit.
    pub rate_limit: Option<i32>,
    /// Deliveries go one at a time, in event order.
    pub ordered: bool,
    /// JSON array of lowercased header names the endpoint marks secret.
    pub secret_headers: String,
}

/// The breaker and failure streak of an endpoint, as its actor saved them.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = endpoint_health)]
pub struct EndpointHealthRow {
    pub endpoint_id: String,
    pub consecutive_failures: i32,
    pub failing_since: Option<i64>,
    /// JSON array of the thresholds already alerted in this streak.
    pub alerted_thresholds: String,
    pub circuit_state: String,
    pub circuit_opened_at: Option<i64>,
    pub circuit_next_probe_at: Option<i64>,
    pub circuit_cooldown_ms: i64,
    pub updated_at: i64,
    pub alert_raised: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    pub id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub endpoint_url: String,
    pub kind: String,
    pub consecutive_failures: i32,
    pub failing_since: Option<i64>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub dispatched_at: Option<i64>,
    /// The threshold an `endpoint.failing` alert crossed.
    pub threshold: Option<i32>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub tenant_id: String,
    pub id: String,
    pub event_type: String,
    pub body: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub state: String,
    pub attempt_count: i32,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The delivery's place in its endpoint's line, given by the store as
    /// the row is written (see `store::sequence`): what the row is built
    /// with is replaced.
    pub seq: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = attempts)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub endpoint_id: Option<String>,
    /// The instance that made the attempt (`HOOKRELAY_INSTANCE_ID`); `None`
    /// for attempts recorded before this was kept.
    pub instance: Option<String>,
}
