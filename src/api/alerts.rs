//! The alerts of a tenant's endpoints, oldest first.

use super::auth::Authorized;
use super::paging::{list_page, Page, Paging};
use super::problem::ApiError;
use super::query::{choice_param, id_param, parse_query, time_param};
use super::{rfc3339, AppState, TenantPath};
use crate::core::health::failure_policy::AlertKind;
use crate::store::alerts::{self, AlertFilter};
use crate::store::models::AlertRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this endpoint's alerts.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    endpoint_id: Option<String>,
    #[param(schema_with = super::schema::alert_kinds)]
    kind: Option<String>,
    /// Only alerts raised at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    cursor: Option<String>,
}

/// An alert about one of the tenant's endpoints.
#[derive(Serialize, ToSchema)]
struct AlertOut {
    id: String,
    tenant_id: String,
    endpoint_id: String,
    endpoint_url: String,
    kind: String,
    /// The threshold an `endpoint.failing` alert crossed.
    threshold: Option<i32>,
    consecutive_failures: i32,
    failing_since: Option<String>,
    status_code: Option<i32>,
    error: Option<String>,
    disabled_reason: Option<String>,
    created_at: String,
}

fn alert_view(row: AlertRow) -> AlertOut {
    AlertOut {
        id: row.id,
        tenant_id: row.tenant_id,
        endpoint_id: row.endpoint_id,
        endpoint_url: row.endpoint_url,
        kind: row.kind,
        threshold: row.threshold,
        consecutive_failures: row.consecutive_failures,
        failing_since: row.failing_since.map(rfc3339),
        status_code: row.status_code,
        error: row.error,
        disabled_reason: row.disabled_reason,
        created_at: rfc3339(row.created_at),
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/alerts",
    tag = "health",
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of alerts, oldest first", body = Page<AlertOut>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let params: ListParams = parse_query(&request)?;
    // The store filters on the name; it is only checked here.
    choice_param::<AlertKind>("kind", params.kind.as_deref())?;
    let since = time_param("since", params.since.as_deref())?;
    let paging = Paging::new(params.limit, params.cursor)?;
    let filter = AlertFilter {
        endpoint_id: id_param("endpoint_id", params.endpoint_id.as_deref())?,
        kind: params.kind,
        since,
    };
    list_page(
        &state.store,
        paging,
        move |db, after, limit| alerts::list(db, &tenant, &filter, after, limit),
        |r| &r.id,
        alert_view,
    )
    .await
}
