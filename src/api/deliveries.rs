use super::problem::ApiError;
use super::{
    event_type_param, page, parse_query, rfc3339, status_class_param, time_range, AppState,
    PageParams,
};
use crate::core::delivery::DeliveryState;
use crate::core::domain::{parse_query_id, FieldError};
use crate::store::deliveries::{self, DeliveryFilter};
use crate::store::models::{AttemptRow, DeliveryRow};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    endpoint_id: Option<String>,
    state: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    status_class: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

pub fn delivery_summary(row: &DeliveryRow) -> Value {
    json!({
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "state": row.state,
        "attempt_count": row.attempt_count,
        "next_attempt_at": row.next_attempt_at.map(rfc3339),
    })
}

pub fn delivery_view(row: &DeliveryRow) -> Value {
    let mut view = delivery_summary(row);
    view["event_id"] = json!(row.event_id);
    view["created_at"] = json!(rfc3339(row.created_at));
    view["updated_at"] = json!(rfc3339(row.updated_at));
    view
}

pub fn attempt_view(row: &AttemptRow) -> Value {
    json!({
        "id": row.id,
        "attempt": row.attempt,
        "started_at": rfc3339(row.started_at),
        "duration_ms": row.duration_ms,
        "status_code": row.status_code,
        "response_headers": row.response_headers.as_deref().and_then(|h| serde_json::from_str::<Value>(h).ok()),
        "response_body": row.response_body,
        "error_kind": row.error_kind,
        "error_message": row.error_message,
    })
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let params: ListParams = parse_query(&request)?;
    if let Some(wanted) = &params.state {
        if DeliveryState::parse(wanted).is_none() {
            let states: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
            return Err(
                FieldError::new("state", format!("must be one of {}", states.join(", "))).into(),
            );
        }
    }
    let page_params = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = page_params.limit()?;
    let cursor = page_params.cursor()?;
    let endpoint_id = params
        .endpoint_id
        .as_deref()
        .map(|id| parse_query_id("endpoint_id", id))
        .transpose()?;
    let (since, until) = time_range(params.since.as_deref(), params.until.as_deref())?;
    let filter = DeliveryFilter {
        endpoint_id,
        state: params.state,
        event_type: event_type_param(params.event_type.as_deref())?,
        since,
        until,
        status_class: status_class_param(params.status_class.as_deref())?,
    };
    let rows = state
        .store
        .run(move |db| deliveries::list(db, &tenant, &filter, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |r| &r.id, |r| delivery_view(&r))))
}

pub async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let found = state
        .store
        .run(move |db| {
            let Some(delivery) = deliveries::find(db, &tenant, &id)? else {
                return Ok(None);
            };
            let attempts = deliveries::attempts_of(db, &id)?;
            Ok(Some((delivery, attempts)))
        })
        .await?;
    let (delivery, attempts) = found.ok_or(ApiError::NotFound("delivery"))?;
    let mut view = delivery_view(&delivery);
    view["attempts"] = attempts.iter().map(attempt_view).collect();
    Ok(HttpResponse::Ok().json(view))
}
