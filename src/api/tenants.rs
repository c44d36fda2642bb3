use super::auth::{Admin, Authorized};
use super::display_name::checked_name;
use super::paging::{list_page, Page, PageParams};
use super::problem::{found_or_404, parse_json, present, ApiError};
use super::query::parse_query;
use super::{rfc3339, AppState, TenantPath};
use crate::core::input::domain::parse_tenant_id;
use crate::ids;
use crate::store::event_types;
use crate::store::models::{ApiKeyRow, TenantRow};
use crate::store::tenants::{self, KeyOwner};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    /// Generated (`ten_…`) when not given.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    id: Option<String>,
    /// Trimmed; one line.
    #[schema(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    name: String,
}

/// A new tenant, with its first API key: the only time the key is shown.
#[derive(Serialize, ToSchema)]
struct TenantCreated {
    id: String,
    name: String,
    api_key: String,
    api_key_id: String,
    created_at: String,
}

/// A tenant as listed.
#[derive(Serialize, ToSchema)]
struct TenantSummary {
    id: String,
    name: String,
    created_at: String,
}

/// A tenant and its settings.
#[derive(Serialize, ToSchema)]
struct TenantOut {
    id: String,
    name: String,
    created_at: String,
    /// `null` follows `HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES`.
    reject_unknown_event_types: Option<bool>,
}

/// Creates a tenant (admin).
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The tenant and its first key", body = TenantCreated),
        (status = 409, description = "A tenant with this id exists", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let input: NewTenant = parse_json(&body)?;
    let id = match input.id {
        Some(id) => parse_tenant_id(&id)?,
        None => ids::time_ordered("ten"),
    };
    let name = checked_name(&input.name)?;
    let api_key = ids::api_key("hrk");
    let row = TenantRow {
        id,
        name,
        created_at: chrono::Utc::now().timestamp_millis(),
    };
    let key = ApiKeyRow::new(&api_key, Some(&row.id), None, row.created_at);
    let (stored, stored_key) = (row.clone(), key.clone());
    if !state
        .store
        .run(move |db| tenants::create(db, &stored, &stored_key))
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "tenant {} already exists",
            row.id
        )));
    }
    state
        .keys
        .created(&key.key_hash, KeyOwner::Tenant(row.id.clone()));
    Ok(HttpResponse::Created().json(TenantCreated {
        id: row.id,
        name: row.name,
        api_key,
        api_key_id: key.id,
        created_at: rfc3339(row.created_at),
    }))
}

/// Every tenant (admin), by id.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    params(PageParams),
    responses((status = 200, description = "A page of tenants", body = Page<TenantSummary>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let paging = parse_query::<PageParams>(&request)?.paging()?;
    list_page(
        &state.store,
        paging,
        tenants::list,
        |r| &r.id,
        |r| TenantSummary {
            id: r.id,
            name: r.name,
            created_at: rfc3339(r.created_at),
        },
    )
    .await
}

fn tenant_view(row: TenantRow, reject_unknown_event_types: Option<bool>) -> TenantOut {
    TenantOut {
        id: row.id,
        name: row.name,
        created_at: rfc3339(row.created_at),
        reject_unknown_event_types,
    }
}

/// A tenant and its settings; `reject_unknown_event_types: null` follows
/// `HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    params(TenantPath),
    responses((status = 200, description = "The tenant", body = TenantOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let (row, reject) = found_or_404(
        "tenant",
        state.store.run(move |db| tenant_with_settings(db, &tenant)),
    )
    .await?;
    Ok(HttpResponse::Ok().json(tenant_view(row, reject)))
}

fn tenant_with_settings(
    db: &mut crate::store::Db,
    tenant: &str,
) -> Result<Option<(TenantRow, Option<bool>)>, crate::store::StoreError> {
    let Some(row) = tenants::find(db, tenant)? else {
        return Ok(None);
    };
    let reject = event_types::reject_unknown_setting(db, tenant)?;
    Ok(Some((row, reject)))
}

/// `PATCH`: absent fields stay; `"reject_unknown_event_types": null`
/// returns to the global default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    /// Trimmed; one line.
    #[schema(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    name: Option<String>,
    /// `true` refuses event types outside the catalog, `false` accepts
    /// any, `null` follows `HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    reject_unknown_event_types: Option<Option<bool>>,
}

/// Renames the tenant or sets whether it refuses event types outside its
/// catalog. A tenant key may change its own tenant.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    params(TenantPath),
    request_body = TenantPatch,
    responses((status = 200, description = "The changed tenant", body = TenantOut))
)]
pub async fn update(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let input: TenantPatch = parse_json(&body)?;
    let name = input.name.map(|name| checked_name(&name)).transpose()?;
    let reject = input.reject_unknown_event_types;
    let owner = tenant.clone();
    let updated = state.writer.call(move |db| {
        if let Some(name) = &name {
            tenants::rename(db, &owner, name)?;
        }
        if let Some(setting) = reject {
            event_types::set_reject_unknown(db, &owner, setting)?;
        }
        tenant_with_settings(db, &owner)
    });
    let (row, reject) = found_or_404("tenant", updated).await?;
    state.publish_rules.forget(&tenant);
    Ok(HttpResponse::Ok().json(tenant_view(row, reject)))
}
