//! The alerts of a tenant's endpoints, oldest first.

use super::problem::ApiError;
use super::{page, rfc3339, time_param, AppState, PageParams};
use crate::core::domain::{parse_query_id, FieldError};
use crate::core::failure_policy::AlertKind;
use crate::store::alerts::{self, AlertFilter};
use crate::store::models::AlertRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct ListParams {
    endpoint_id: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn alert_view(row: &AlertRow) -> Value {
    json!({
        "id": row.id,
        "tenant_id": row.tenant_id,
        "endpoint_id": row.endpoint_id,
        "endpoint_url": row.endpoint_url,
        "kind": row.kind,
        "consecutive_failures": row.consecutive_failures,
        "failing_since": row.failing_since.map(rfc3339),
        "status_code": row.status_code,
        "error": row.error,
        "disabled_reason": row.disabled_reason,
        "created_at": rfc3339(row.created_at),
    })
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let params = params.into_inner();
    if let Some(kind) = &params.kind {
        if AlertKind::parse(kind).is_none() {
            let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(
                FieldError::new("kind", format!("must be one of {}", kinds.join(", "))).into(),
            );
        }
    }
    let since = time_param("since", params.since.as_deref())?;
    let paging = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    let endpoint_id = params
        .endpoint_id
        .as_deref()
        .map(|id| parse_query_id("endpoint_id", id))
        .transpose()?;
    let filter = AlertFilter {
        endpoint_id,
        kind: params.kind,
        since,
    };
    let rows = state
        .store
        .run(move |db| alerts::list(db, &tenant, &filter, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |r| &r.id, |r| alert_view(&r))))
}
