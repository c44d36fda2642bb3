//! A tenant's API keys: created (the key is shown once), listed (by id,
//! name and prefix only) and revoked. A tenant's key may manage its own
//! tenant's keys, the admin key every tenant's.

use super::problem::{parse_optional_json, ApiError};
use super::{page, rfc3339, AppState};
use crate::core::domain::{check_line, FieldError};
use crate::ids;
use crate::store::api_keys::{self, MAX_KEYS_PER_TENANT};
use crate::store::models::ApiKeyRow;
use crate::store::tenants::KeyOwner;
use crate::time::now_ms;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

const MAX_NAME: usize = 256;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: Option<String>,
}

pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let input: NewKey = parse_optional_json(&body)?;
    let name = input.name.map(|name| checked_name(&name)).transpose()?;
    let key = ids::api_key("hrk");
    let row = ApiKeyRow::new(&key, Some(&tenant), name, now_ms());
    let stored = row.clone();
    if !state
        .writer
        .call(move |db| api_keys::create(db, &stored))
        .await?
    {
        return Err(ApiError::LimitReached(format!(
            "a tenant may have at most {MAX_KEYS_PER_TENANT} API keys; revoke one first"
        )));
    }
    state.keys.created(&row.key_hash, KeyOwner::Tenant(tenant));
    let mut created = view(&row);
    created["key"] = json!(key);
    Ok(HttpResponse::Created().json(created))
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let rows = state
        .store
        .run(move |db| api_keys::list(db, &tenant))
        .await?;
    // Every key of a tenant fits in one page.
    Ok(HttpResponse::Ok().json(page(rows, MAX_KEYS_PER_TENANT, |r| &r.id, |r| view(&r))))
}

/// Revoking the key of the request itself, or a tenant's last key, is
/// allowed: the admin key can always create another.
pub async fn revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let hash = state
        .writer
        .call(move |db| api_keys::revoke(db, &tenant, &id))
        .await?
        .ok_or(ApiError::NotFound("api key"))?;
    state.keys.revoked(&hash);
    Ok(HttpResponse::NoContent().finish())
}

fn checked_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters"),
        ));
    }
    check_line("name", name)?;
    Ok(name.to_owned())
}

/// A key as listed: never the key, nor its digest.
fn view(row: &ApiKeyRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": rfc3339(row.created_at),
    })
}
