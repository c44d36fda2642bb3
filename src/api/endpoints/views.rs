//! What the API shows of an endpoint: its fields (never its secret), the
//! health-limit overrides, and the live figures of its actor.

use crate::actors::endpoint::EndpointSnapshot;
use crate::api::rfc3339;
use crate::core::health::limits::HealthOverrides;
use crate::core::input::domain::redacted_headers;
use crate::store::models::EndpointRow;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// An endpoint as shown: never its secret.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    id: String,
    tenant_id: String,
    url: String,
    description: String,
    event_types: Vec<String>,
    /// Credential-like values, and those of `secret_headers`, shown as
    /// `********`.
    headers: BTreeMap<String, String>,
    /// Lowercased.
    secret_headers: Vec<String>,
    timeout_seconds: i32,
    max_in_flight: i32,
    retry_schedule: Vec<u32>,
    retry_client_errors: bool,
    http_method: String,
    /// Most attempts a second; `null`: no limit.
    rate_limit: Option<i32>,
    /// One delivery at a time, in event order.
    ordered: bool,
    metadata: BTreeMap<String, String>,
    signature_scheme: String,
    signature_header: String,
    signature_sha256_prefix: bool,
    /// `active` or `disabled`.
    status: String,
    disabled_at: Option<String>,
    /// `manual`, `consecutive_failures` or `gone`.
    disabled_reason: Option<String>,
    created_at: String,
    updated_at: String,
    /// Shown at top level like every writable field, and grouped in
    /// `overrides`.
    #[serde(flatten)]
    limits: LimitOverrides,
    overrides: LimitOverrides,
    /// Live figures of the endpoint's actor (`GET` of one endpoint only).
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<EndpointStats>,
}

/// Each health limit: the endpoint's override, `null` for the global value.
#[derive(Clone, Serialize, ToSchema)]
struct LimitOverrides {
    breaker_failures: Option<u32>,
    breaker_cooldown_seconds: Option<u64>,
    breaker_max_cooldown_seconds: Option<u64>,
    alert_thresholds: Option<Vec<u32>>,
    disable_after_failures: Option<u32>,
    disable_after_seconds: Option<u64>,
}

impl From<HealthOverrides> for LimitOverrides {
    fn from(overrides: HealthOverrides) -> Self {
        LimitOverrides {
            breaker_failures: overrides.breaker_failures,
            breaker_cooldown_seconds: overrides.breaker_cooldown_seconds,
            breaker_max_cooldown_seconds: overrides.breaker_max_cooldown_seconds,
            alert_thresholds: overrides.alert_thresholds,
            disable_after_failures: overrides.disable_after_failures,
            disable_after_seconds: overrides.disable_after_seconds,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct EndpointStats {
    /// Deliveries in the actor's memory.
    queued: usize,
    /// More pending deliveries wait on disk.
    backlog_on_disk: bool,
    /// The backlog move under way (`hold` or `release`), if any.
    backlog_move: Option<&'static str>,
    in_flight: usize,
    /// Of those in flight, attempts waiting for a slot of the service's
    /// attempt budget: not yet sent, and not failures.
    waiting_for_slot: usize,
    /// Reloads of its state: after a change, a failed write or a stop.
    restarts: u32,
    /// The last storage failure it met, or why it cannot sign.
    last_error: Option<String>,
}

/// A new endpoint: the one view, with `GET …/secret`, that shows the secret.
#[derive(Serialize, ToSchema)]
pub(super) struct EndpointCreated {
    #[serde(flatten)]
    pub(super) endpoint: EndpointOut,
    pub(super) secret: String,
}

pub fn view(row: &EndpointRow, live: Option<&EndpointSnapshot>) -> EndpointOut {
    let limits = LimitOverrides::from(row.overrides());
    EndpointOut {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        url: row.url.clone(),
        description: row.description.clone(),
        event_types: row.event_type_list(),
        headers: redacted_headers(&row.header_map(), &row.secret_header_list()),
        secret_headers: row.secret_header_list(),
        timeout_seconds: row.timeout_seconds,
        max_in_flight: row.max_in_flight,
        retry_schedule: row.retry_schedule_list(),
        retry_client_errors: row.retry_client_errors,
        http_method: row.http_method.clone(),
        rate_limit: row.rate_limit,
        ordered: row.ordered,
        metadata: row.metadata_map(),
        signature_scheme: row.signature_scheme.clone(),
        signature_header: row.signature_header.clone(),
        signature_sha256_prefix: row.signature_sha256_prefix,
        status: row.status.clone(),
        disabled_at: row.disabled_at.map(rfc3339),
        disabled_reason: row.disabled_reason.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        overrides: limits.clone(),
        limits,
        stats: live.map(|live| EndpointStats {
            queued: live.machine.queued,
            backlog_on_disk: live.machine.backlog_on_disk,
            backlog_move: live.machine.moving.map(|kind| kind.as_str()),
            in_flight: live.machine.in_flight,
            waiting_for_slot: live.waiting_for_slot,
            restarts: live.restarts,
            last_error: live.last_error.clone(),
        }),
    }
}
