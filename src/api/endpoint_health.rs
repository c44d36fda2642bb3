//! Endpoint health: the per-endpoint and per-tenant views, and disabling
//! and re-enabling an endpoint. Live state comes from the endpoint actors,
//! history from the database.

use super::endpoints::{find, view};
use super::problem::{parse_optional_json, ApiError};
use super::{rfc3339, AppState};
use crate::actors::endpoint::EndpointSnapshot;
use crate::actors::router::{DisableEndpoint, EnableEndpoint, SnapshotOf, SnapshotsOfTenant};
use crate::core::breaker::CircuitState;
use crate::core::delivery::DeliveryState;
use crate::core::domain::FieldError;
use crate::core::health::{success_rate, worst_first, Severity};
use crate::core::limits::HealthLimits;
use crate::store::endpoint_state::Replay;
use crate::store::models::{AttemptRow, EndpointRow};
use crate::store::{deliveries, endpoints, health, StoreError};
use crate::time::now_ms;
use actix::MailboxError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const RECENT_ATTEMPTS: i64 = 10;

type EndpointPath = web::Path<(String, String)>;

/// The actor's answer, or `503` when it cannot be reached.
async fn snapshot(state: &AppState, id: &str) -> Result<EndpointSnapshot, ApiError> {
    state
        .router
        .send(SnapshotOf(id.to_owned()))
        .await
        .map_err(|_| ApiError::Unavailable)?
        .ok_or(ApiError::Unavailable)
}

fn circuit_view(live: &EndpointSnapshot) -> Value {
    json!({
        "state": live.machine.breaker.state.as_str(),
        "opened_at": live.machine.breaker.opened_at.filter(|_| live.machine.breaker.state != CircuitState::Closed).map(rfc3339),
        "next_probe_at": live.machine.breaker.next_probe_at.filter(|_| live.machine.breaker.state == CircuitState::Open).map(rfc3339),
    })
}

fn attempt_summary(row: &AttemptRow) -> Value {
    json!({
        "delivery_id": row.delivery_id,
        "attempt": row.attempt,
        "started_at": rfc3339(row.started_at),
        "duration_ms": row.duration_ms,
        "status_code": row.status_code,
        "error_kind": row.error_kind,
        "error_message": row.error_message,
    })
}

pub async fn endpoint(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let row = find(&state, &tenant, &id).await?;
    let live = snapshot(&state, &id).await?;
    let now = now_ms();
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
    Ok(HttpResponse::Ok().json(json!({
        "endpoint_id": row.id,
        "url": row.url,
        "status": {
            "state": row.status,
            "reason": row.disabled_reason,
            "since": row.disabled_at.map(rfc3339),
        },
        "circuit": circuit_view(&live),
        "consecutive_failures": live.machine.streak.consecutive_failures,
        "failing_since": live.machine.streak.failing_since.map(rfc3339),
        "queue": {"pending": pending, "held": held, "in_flight": live.machine.in_flight},
        "restarts": live.restarts,
        "last_error": live.last_error,
        "last_hour": last_hour,
        "last_day": last_day,
        "last_success_at": last_success_at.map(rfc3339),
        "last_failure": last_failure.map(|failure| json!({
            "at": rfc3339(failure.started_at),
            "status_code": failure.status_code,
            "error_kind": failure.error_kind,
            "error_message": failure.error_message,
        })),
        "recent_attempts": recent.iter().map(attempt_summary).collect::<Vec<_>>(),
        "limits": limits_view(&row.limits(&state.health_defaults)),
    })))
}

/// The limits in effect: the endpoint's overrides over the global settings.
fn limits_view(limits: &HealthLimits) -> Value {
    json!({
        "breaker_failures": limits.breaker_failures,
        "breaker_cooldown_seconds": limits.breaker_cooldown.as_secs(),
        "breaker_max_cooldown_seconds": limits.breaker_max_cooldown.as_secs(),
        "alert_thresholds": limits.alert_thresholds,
        "disable_after_failures": limits.disable_after_failures,
        "disable_after_seconds": limits.disable_after.as_secs(),
    })
}

/// One row per endpoint of the tenant, worst first.
pub async fn tenant(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let live = state
        .router
        .send(SnapshotsOfTenant(tenant.clone()))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let since = now_ms() - HOUR_MS;
    let (rows, queues, windows) = state
        .store
        .run(move |db| {
            let rows = endpoints::all_of_tenant(db, &tenant)?;
            let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
            let queues = deliveries::count_by_endpoint_and_state(
                db,
                &tenant,
                &[DeliveryState::Pending, DeliveryState::Held],
            )?;
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
    let mut summaries: Vec<(Severity, Value)> = rows
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
            let summary = json!({
                "endpoint_id": row.id,
                "url": row.url,
                "status": row.status,
                "disabled_reason": row.disabled_reason,
                "circuit": circuit.as_str(),
                "consecutive_failures": failures,
                "failing_since": snapshot.and_then(|s| s.machine.streak.failing_since).map(rfc3339),
                "pending": queue_of(&row.id, DeliveryState::Pending),
                "held": queue_of(&row.id, DeliveryState::Held),
                "last_hour_attempts": total,
                "last_hour_success_rate": rate,
            });
            (severity, summary)
        })
        .collect();
    summaries.sort_by(|a, b| worst_first(&a.0, &b.0));
    let data: Vec<Value> = summaries.into_iter().map(|(_, summary)| summary).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

pub async fn disable(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    find(&state, &tenant, &id).await?;
    ask(state.router.send(DisableEndpoint(id.clone()))).await?;
    let row = find(&state, &tenant, &id).await?;
    Ok(HttpResponse::Ok().json(view(&row, None)))
}

/// Asks the endpoint's actor for a status change. An actor that is loading
/// its saved state, or moving a backlog, queues it and answers once it is
/// done; `503` when the actor cannot be reached.
async fn ask<T>(
    sent: impl Future<Output = Result<Option<Result<T, StoreError>>, MailboxError>>,
) -> Result<T, ApiError> {
    let answer = sent
        .await
        .map_err(|_| ApiError::Unavailable)?
        .ok_or(ApiError::Unavailable)?;
    Ok(answer?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnableRequest {
    replay: Option<String>,
}

pub async fn enable(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let input: EnableRequest = parse_optional_json(&body)?;
    let replay = match input.replay.as_deref() {
        None | Some("held") => Replay::Held,
        Some("none") => Replay::None,
        Some(_) => return Err(FieldError::new("replay", "must be \"held\" or \"none\"").into()),
    };
    find(&state, &tenant, &id).await?;
    let outcome = ask(state.router.send(EnableEndpoint(id.clone(), replay))).await?;
    let row = find(&state, &tenant, &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "endpoint": view(&row, None),
        "replayed": outcome.replayed,
        "cancelled": outcome.cancelled,
    })))
}
