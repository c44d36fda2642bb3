use super::problem::{parse_json, ApiError};
use super::{page, rfc3339, AppState, PageParams};
use crate::core::domain::{check_line, parse_tenant_id, FieldError};
use crate::ids;
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
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(FieldError::new("name", format!("must be 1 to {MAX_NAME} characters")).into());
    }
    check_line("name", &name)?;
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
