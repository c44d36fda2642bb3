use super::problem::{parse_json, ApiError};
use super::{page, rfc3339, AppState, PageParams};
use crate::core::domain::{check_line, parse_tenant_id, FieldError};
use crate::ids;
use crate::store::event_types;
use crate::store::models::{ApiKeyRow, TenantRow};
use crate::store::tenants::{self, KeyOwner};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: Option<String>,
    name: String,
}

const MAX_NAME: usize = 256;

/// A tenant's name, trimmed: 1 to [`MAX_NAME`] characters on one line.
fn checked_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    check_line("name", &name)?;
    Ok(name)
}

pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state.keys.require_admin(&request).await?;
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
    Ok(HttpResponse::Created().json(json!({
        "id": row.id,
        "name": row.name,
        "api_key": api_key,
        "api_key_id": key.id,
        "created_at": rfc3339(row.created_at),
    })))
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    state.keys.require_admin(&request).await?;
    let limit = params.limit()?;
    let cursor = params.cursor()?;
    let rows = state
        .store
        .run(move |db| tenants::list(db, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |r| &r.id,
        |r| json!({"id": r.id, "name": r.name, "created_at": rfc3339(r.created_at)}),
    )))
}

fn tenant_view(row: &TenantRow, reject_unknown_event_types: Option<bool>) -> serde_json::Value {
    json!({
        "id": row.id,
        "name": row.name,
        "created_at": rfc3339(row.created_at),
        "reject_unknown_event_types": reject_unknown_event_types,
    })
}

/// A tenant and its settings; `reject_unknown_event_types: null` follows
/// `HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES`.
pub async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let found = state
        .store
        .run(move |db| tenant_with_settings(db, &tenant))
        .await?;
    let (row, reject) = found.ok_or(ApiError::NotFound("tenant"))?;
    Ok(HttpResponse::Ok().json(tenant_view(&row, reject)))
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    reject_unknown_event_types: Option<Option<bool>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(deserializer).map(Some)
}

/// Renames the tenant or sets whether it refuses event types outside its
/// catalog. A tenant key may change its own tenant.
pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let input: TenantPatch = parse_json(&body)?;
    let name = input.name.map(|name| checked_name(&name)).transpose()?;
    let reject = input.reject_unknown_event_types;
    let owner = tenant.clone();
    let updated = state
        .writer
        .call(move |db| {
            if let Some(name) = &name {
                tenants::rename(db, &owner, name)?;
            }
            if let Some(setting) = reject {
                event_types::set_reject_unknown(db, &owner, setting)?;
            }
            tenant_with_settings(db, &owner)
        })
        .await?;
    let (row, reject) = updated.ok_or(ApiError::NotFound("tenant"))?;
    state.publish_rules.forget(&tenant);
    Ok(HttpResponse::Ok().json(tenant_view(&row, reject)))
}
