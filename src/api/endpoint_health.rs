//! Endpoint health: the per-endpoint and per-tenant views, and disabling
//! and re-enabling an endpoint. Live state comes from the endpoint actors,
//! history from the database.

use super::auth::Authorized;
use super::endpoints::views::{view, EndpointOut};
use super::problem::{parse_optional_json, ApiError};
use super::{rfc3339, AppState, EndpointPath, TenantPath};
use crate::actors::endpoint::EndpointSnapshot;
use crate::actors::router::{DisableEndpoint, EnableEndpoint, SnapshotOf, SnapshotsOfTenant};
use crate::core::delivery::lifecycle::DeliveryState;
use crate::core::health::breaker::CircuitState;
use crate::core::health::limits::HealthLimits;
use crate::core::health::views::{success_rate, worst_first, Severity, WindowStats};
use crate::core::input::domain::FieldError;
use crate::store::endpoint_state::Replay;
use crate::store::models::{AttemptRow, EndpointRow};
use crate::store::{deliveries, endpoints, health, StoreError};
use crate::time::now_ms;
use actix::MailboxError;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use utoipa::ToSchema;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const RECENT_ATTEMPTS: i64 = 10;

/// The actor's answer, or `503` when it cannot be reached.
async fn snapshot(state: &AppState, id: &str) -> Result<EndpointSnapshot, ApiError> {
    let live = state.router.send(SnapshotOf(id.to_owned())).await?;
    live.ok_or(ApiError::Unavailable)
}

/// An endpoint's health.
#[derive(Serialize, ToSchema)]
struct EndpointHealth {
    endpoint_id: String,
    url: String,
    status: StatusOut,
    circuit: CircuitOut,
    consecutive_failures: u32,
    failing_since: Option<String>,
    queue: QueueOut,
    /// Reloads of the actor's state: after a change, a failed write or a stop.
    restarts: u32,
    /// The last storage failure the actor met, or why it cannot sign.
    last_error: Option<String>,
    last_hour: WindowStats,
    last_day: WindowStats,
    last_success_at: Option<String>,
    last_failure: Option<LastFailure>,
    /// The last 10 attempts, newest first.
    recent_attempts: Vec<AttemptSummary>,
    limits: LimitsInEffect,
}

#[derive(Serialize, ToSchema)]
struct StatusOut {
    /// `active` or `disabled`.
    state: String,
    /// Why it is disabled: `manual`, `consecutive_failures` or `gone`.
    reason: Option<String>,
    since: Option<String>,
}

/// The circuit breaker.
#[derive(Serialize, ToSchema)]
struct CircuitOut {
    /// `closed`, `open` or `half_open`.
    state: &'static str,
    opened_at: Option<String>,
    next_probe_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct QueueOut {
    pending: u64,
    held: u64,
    in_flight: usize,
    /// Of those in flight, attempts waiting for a slot of the service's
    /// attempt budget: not yet sent, and not failures.
    waiting_for_slot: usize,
}

#[derive(Serialize, ToSchema)]
struct LastFailure {
    at: String,
    status_code: Option<i32>,
    error_kind: Option<String>,
    error_message: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AttemptSummary {
    delivery_id: String,
    attempt: i32,
    started_at: String,
    duration_ms: i64,
    status_code: Option<i32>,
    error_kind: Option<String>,
    error_message: Option<String>,
}

/// The health limits in effect: the endpoint's overrides over the global
/// settings.
#[derive(Serialize, ToSchema)]
struct LimitsInEffect {
    breaker_failures: u32,
    breaker_cooldown_seconds: u64,
    breaker_max_cooldown_seconds: u64,
    alert_thresholds: Vec<u32>,
    disable_after_failures: u32,
    disable_after_seconds: u64,
}

fn circuit_view(live: &EndpointSnapshot) -> CircuitOut {
    let breaker = &live.machine.breaker;
    CircuitOut {
        state: breaker.state.as_str(),
        opened_at: breaker
            .opened_at
            .filter(|_| breaker.state != CircuitState::Closed)
            .map(rfc3339),
        next_probe_at: breaker
            .next_probe_at
            .filter(|_| breaker.state == CircuitState::Open)
            .map(rfc3339),
    }
}

fn attempt_summary(row: &AttemptRow) -> AttemptSummary {
    AttemptSummary {
        delivery_id: row.delivery_id.clone(),
        attempt: row.attempt,
        started_at: rfc3339(row.started_at),
        duration_ms: row.duration_ms,
        status_code: row.status_code,
        error_kind: row.error_kind.clone(),
        error_message: row.error_message.clone(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/health",
    tag = "health",
    params(EndpointPath),
    responses((status = 200, description = "The endpoint's health", body = EndpointHealth))
)]
pub async fn endpoint(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let row = path.find(&state).await?;
    let live = snapshot(&state, &path.endpoint).await?;
    let now = now_ms();
    let id = path.into_inner().endpoint;
    let history = state
        .store
        .run(move |db| {
            Ok((
                deliveries::count_in_state(db, &id, DeliveryState::Pending)?,
                deliveries::count_in_state(db, &id, DeliveryState::Held)?,
                health::window(db, &id, now - HOUR_MS)?,
                health::window(db, &id, now - DAY_MS)?,
                health::last_success_at(db, &id)?,
                health::last_failure(db, &id)?,
                health::recent(db, &id, RECENT_ATTEMPTS)?,
            ))
        })
        .await?;
    let (pending, held, last_hour, last_day, last_success_at, last_failure, recent) = history;
    let limits = limits_view(&row.limits(&state.health_defaults));
    Ok(HttpResponse::Ok().json(EndpointHealth {
        endpoint_id: row.id,
        url: row.url,
        status: StatusOut {
            state: row.status,
            reason: row.disabled_reason,
            since: row.disabled_at.map(rfc3339),
        },
        circuit: circuit_view(&live),
        consecutive_failures: live.machine.streak.consecutive_failures,
        failing_since: live.machine.streak.failing_since.map(rfc3339),
        queue: QueueOut {
            pending,
            held,
            in_flight: live.machine.in_flight,
            waiting_for_slot: live.waiting_for_slot,
        },
        restarts: live.restarts,
        last_error: live.last_error,
        last_hour,
        last_day,
        last_success_at: last_success_at.map(rfc3339),
        last_failure: last_failure.map(|failure| LastFailure {
            at: rfc3339(failure.started_at),
            status_code: failure.status_code,
            error_kind: failure.error_kind,
            error_message: failure.error_message,
        }),
        recent_attempts: recent.iter().map(attempt_summary).collect(),
        limits,
    }))
}

fn limits_view(limits: &HealthLimits) -> LimitsInEffect {
    LimitsInEffect {
        breaker_failures: limits.breaker_failures,
        breaker_cooldown_seconds: limits.breaker_cooldown.as_secs(),
        breaker_max_cooldown_seconds: limits.breaker_max_cooldown.as_secs(),
        alert_thresholds: limits.alert_thresholds.clone(),
        disable_after_failures: limits.disable_after_failures,
        disable_after_seconds: limits.disable_after.as_secs(),
    }
}

/// One endpoint in the tenant's health summary.
#[derive(Serialize, ToSchema)]
struct HealthSummary {
    endpoint_id: String,
    url: String,
    /// `active` or `disabled`.
    status: String,
    disabled_reason: Option<String>,
    /// `closed`, `open` or `half_open`.
    circuit: &'static str,
    consecutive_failures: u32,
    failing_since: Option<String>,
    pending: i64,
    held: i64,
    last_hour_attempts: i64,
    /// `null` without attempts in the last hour.
    last_hour_success_rate: Option<f64>,
}

/// Every endpoint of the tenant, worst first (one list, no paging).
#[derive(Serialize, ToSchema)]
struct TenantHealth {
    data: Vec<HealthSummary>,
}

/// One row per endpoint of the tenant, worst first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/health",
    tag = "health",
    params(TenantPath),
    responses((status = 200, description = "One summary per endpoint, worst first", body = TenantHealth))
)]
pub async fn tenant(
    state: web::Data<AppState>,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let live = state.router.send(SnapshotsOfTenant(tenant.clone())).await?;
    let since = now_ms() - HOUR_MS;
    let (rows, queues, windows) = state
        .store
        .run(move |db| {
            let rows = endpoints::all_of_tenant(db, &tenant)?;
            let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
            let queues = deliveries::count_waiting_by_endpoint_and_state(db, &tenant)?;
            let windows = health::window_counts(db, &ids, since)?;
            Ok((rows, queues, windows))
        })
        .await?;
    let queue_of = |id: &str, wanted: DeliveryState| {
        queues
            .iter()
            .find(|(endpoint, state, _)| endpoint == id && state == wanted.as_str())
            .map_or(0, |(_, _, count)| *count)
    };
    let windows: HashMap<&str, (i64, i64)> = windows
        .iter()
        .map(|(id, total, ok)| (id.as_str(), (*total, *ok)))
        .collect();
    let mut summaries: Vec<(Severity, HealthSummary)> = rows
        .iter()
        .map(|row: &EndpointRow| {
            let snapshot = live.get(&row.id);
            let (total, ok) = windows.get(row.id.as_str()).copied().unwrap_or((0, 0));
            let rate = success_rate(
                u64::try_from(total).unwrap_or_default(),
                u64::try_from(ok).unwrap_or_default(),
            );
            let circuit = snapshot.map_or(CircuitState::Closed, |s| s.machine.breaker.state);
            let failures = snapshot.map_or(0, |s| s.machine.streak.consecutive_failures);
            let severity = Severity {
                disabled: !row.is_active(),
                circuit,
                consecutive_failures: failures,
                success_rate: rate,
            };
            let summary = HealthSummary {
                endpoint_id: row.id.clone(),
                url: row.url.clone(),
                status: row.status.clone(),
                disabled_reason: row.disabled_reason.clone(),
                circuit: circuit.as_str(),
                consecutive_failures: failures,
                failing_since: snapshot
                    .and_then(|s| s.machine.streak.failing_since)
                    .map(rfc3339),
                pending: queue_of(&row.id, DeliveryState::Pending),
                held: queue_of(&row.id, DeliveryState::Held),
                last_hour_attempts: total,
                last_hour_success_rate: rate,
            };
            (severity, summary)
        })
        .collect();
    summaries.sort_by(|a, b| worst_first(&a.0, &b.0));
    let data = summaries.into_iter().map(|(_, summary)| summary).collect();
    Ok(HttpResponse::Ok().json(TenantHealth { data }))
}

/// Disables the endpoint by hand (`manual`): its deliveries are held.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/disable",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, description = "The disabled endpoint", body = EndpointOut))
)]
pub async fn disable(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    path.find(&state).await?;
    ask(state.router.send(DisableEndpoint(path.endpoint.clone()))).await?;
    state.metrics.status_changed("disabled", "api");
    let row = path.find(&state).await?;
    Ok(HttpResponse::Ok().json(view(&row, None)))
}

/// Asks the endpoint's actor for a status change. An actor that is loading
/// its saved state, or moving a backlog, queues it and answers once it is
/// done; `503` when the actor cannot be reached.
async fn ask<T>(
    sent: impl Future<Output = Result<Option<Result<T, StoreError>>, MailboxError>>,
) -> Result<T, ApiError> {
    let answer = sent.await?.ok_or(ApiError::Unavailable)?;
    Ok(answer?)
}

/// An empty body is allowed too.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct EnableRequest {
    /// `held` (default) sends every held delivery again; `none` cancels them.
    #[schema(schema_with = replay_choice)]
    replay: Option<String>,
}

fn replay_choice() -> utoipa::openapi::Object {
    super::schema::one_of(["held", "none"])
}

#[derive(Serialize, ToSchema)]
struct Enabled {
    endpoint: EndpointOut,
    /// Held deliveries sent again.
    replayed: usize,
    /// Held deliveries cancelled.
    cancelled: usize,
}

/// Re-activates the endpoint: resets its failure counter and breaker.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/enable",
    tag = "endpoints",
    params(EndpointPath),
    request_body(content = Option<EnableRequest>),
    responses((status = 200, description = "The endpoint and what became of its held deliveries", body = Enabled))
)]
pub async fn enable(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let input: EnableRequest = parse_optional_json(&body)?;
    let replay = match input.replay.as_deref() {
        None | Some("held") => Replay::Held,
        Some("none") => Replay::None,
        Some(_) => return Err(FieldError::new("replay", "must be \"held\" or \"none\"").into()),
    };
    path.find(&state).await?;
    let outcome = ask(state
        .router
        .send(EnableEndpoint(path.endpoint.clone(), replay)))
    .await?;
    state.metrics.status_changed("enabled", "api");
    let row = path.find(&state).await?;
    Ok(HttpResponse::Ok().json(Enabled {
        endpoint: view(&row, None),
        replayed: outcome.replayed,
        cancelled: outcome.cancelled,
    }))
}
