use super::auth::Authorized;
use super::paging::{list_page, Page, Paging};
use super::problem::{found_or_404, ApiError};
use super::query::{choice_param, event_type_param, id_param, parse_query, time_range};
use super::{rfc3339, AppState, DeliveryPath, TenantPath};
use crate::core::delivery::captured_headers;
use crate::core::delivery::lifecycle::DeliveryState;
use crate::store::deliveries::{self, DeliveryFilter};
use crate::store::models::{AttemptRow, DeliveryRow};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The query of a delivery list; an unknown parameter is a 422.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only deliveries to this endpoint.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    endpoint_id: Option<String>,
    #[param(schema_with = super::schema::delivery_states)]
    state: Option<String>,
    /// Only deliveries of events of this type, exactly as published.
    #[param(min_length = 1, max_length = 255)]
    event_type: Option<String>,
    /// Only deliveries created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only deliveries created before this RFC 3339 time (after `since`).
    #[param(format = DateTime)]
    until: Option<String>,
    /// The class of the last attempt's status (`none`: no answer).
    #[param(schema_with = super::schema::status_classes)]
    status_class: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    cursor: Option<String>,
}

/// A delivery as an event's view lists it.
#[derive(Serialize, ToSchema)]
pub struct DeliverySummary {
    id: String,
    endpoint_id: String,
    /// `pending`, `succeeded`, `failed`, `held` or `cancelled`.
    state: String,
    attempt_count: i32,
    /// When a pending delivery is attempted next.
    next_attempt_at: Option<String>,
}

/// A delivery; one delivery's view adds its attempts.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    #[serde(flatten)]
    summary: DeliverySummary,
    event_id: String,
    created_at: String,
    updated_at: String,
    /// Every attempt, oldest first (`GET` of one delivery only).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<Vec<AttemptOut>>,
}

/// One attempt and the receiver's answer.
#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    id: String,
    attempt: i32,
    started_at: String,
    duration_ms: i64,
    status_code: Option<i32>,
    /// The receiver's headers, at most 64 of them and 16 KiB of names and
    /// values, the first received that fit.
    #[schema(value_type = Option<Object>)]
    response_headers: Option<Value>,
    /// True when some of the receiver's headers were left out.
    response_headers_truncated: bool,
    /// The first 10 KiB; invalid UTF-8 and control characters but tab and
    /// line breaks shown as U+FFFD.
    response_body: Option<String>,
    /// `timeout`, `connect`, `dns`, `tls`, `http_status`, `body`,
    /// `request`, `blocked` or `signing`.
    error_kind: Option<String>,
    error_message: Option<String>,
}

pub fn delivery_summary(row: &DeliveryRow) -> DeliverySummary {
    DeliverySummary {
        id: row.id.clone(),
        endpoint_id: row.endpoint_id.clone(),
        state: row.state.clone(),
        attempt_count: row.attempt_count,
        next_attempt_at: row.next_attempt_at.map(rfc3339),
    }
}

pub fn delivery_view(row: &DeliveryRow) -> DeliveryOut {
    DeliveryOut {
        summary: delivery_summary(row),
        event_id: row.event_id.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        attempts: None,
    }
}

pub fn attempt_view(row: &AttemptRow) -> AttemptOut {
    let stored_headers = row
        .response_headers
        .as_deref()
        .and_then(|h| serde_json::from_str::<serde_json::Map<String, Value>>(h).ok())
        .map(captured_headers::from_stored);
    let response_headers_truncated = stored_headers
        .as_ref()
        .is_some_and(|(_, truncated)| *truncated);
    AttemptOut {
        id: row.id.clone(),
        attempt: row.attempt,
        started_at: rfc3339(row.started_at),
        duration_ms: row.duration_ms,
        status_code: row.status_code,
        response_headers: stored_headers.map(|(headers, _)| Value::Object(headers)),
        response_headers_truncated,
        response_body: row.response_body.clone(),
        error_kind: row.error_kind.clone(),
        error_message: row.error_message.clone(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deliveries",
    tag = "deliveries",
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of deliveries", body = Page<DeliveryOut>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let params: ListParams = parse_query(&request)?;
    // The store filters on the name; it is only checked here.
    choice_param::<DeliveryState>("state", params.state.as_deref())?;
    let paging = Paging::new(params.limit, params.cursor)?;
    let endpoint_id = id_param("endpoint_id", params.endpoint_id.as_deref())?;
    let (since, until) = time_range(params.since.as_deref(), params.until.as_deref())?;
    let filter = DeliveryFilter {
        endpoint_id,
        state: params.state,
        event_type: event_type_param(params.event_type.as_deref())?,
        since,
        until,
        status_class: choice_param("status_class", params.status_class.as_deref())?,
    };
    list_page(
        &state.store,
        paging,
        move |db, after, limit| deliveries::list(db, &tenant, &filter, after, limit),
        |r| &r.id,
        |r| delivery_view(&r),
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deliveries/{delivery}",
    tag = "deliveries",
    params(DeliveryPath),
    responses((status = 200, description = "The delivery and every attempt", body = DeliveryOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryPath { tenant, delivery } = path.into_inner();
    let found = state.store.run(move |db| {
        let Some(row) = deliveries::find(db, &tenant, &delivery)? else {
            return Ok(None);
        };
        let attempts = deliveries::attempts_of(db, &delivery)?;
        Ok(Some((row, attempts)))
    });
    let (row, attempts) = found_or_404("delivery", found).await?;
    Ok(HttpResponse::Ok().json(DeliveryOut {
        attempts: Some(attempts.iter().map(attempt_view).collect()),
        ..delivery_view(&row)
    }))
}
