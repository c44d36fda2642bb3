//! A tenant's API keys: created (the key is shown once), listed (by id,
//! name and prefix only) and revoked. A tenant's key may manage its own
//! tenant's keys, the admin key every tenant's.

use super::auth::Authorized;
use super::display_name::checked_name;
use super::paging::{list_page, Page, PageParams};
use super::problem::{found_or_404, parse_optional_json, ApiError};
use super::query::parse_query;
use super::{rfc3339, ApiKeyPath, AppState, TenantPath};
use crate::ids;
use crate::store::api_keys::{self, MAX_KEYS_PER_TENANT};
use crate::store::models::ApiKeyRow;
use crate::store::tenants::KeyOwner;
use crate::time::now_ms;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An empty body is allowed too.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Trimmed; one line.
    #[schema(max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    name: Option<String>,
}

/// A key as listed: never the key, nor its digest.
#[derive(Serialize, ToSchema)]
struct ApiKeyOut {
    id: String,
    name: Option<String>,
    /// The key's first characters, to recognise it; `null` for keys
    /// created before they were kept.
    prefix: Option<String>,
    created_at: String,
    /// When the key last authenticated a request, to within a minute (the
    /// time is written at most once a minute, shortly after the request);
    /// `null` if it has not since it was created or since hookrelay began
    /// to record it.
    last_used_at: Option<String>,
}

/// A new key: the only answer that shows it.
#[derive(Serialize, ToSchema)]
struct ApiKeyCreated {
    #[serde(flatten)]
    listed: ApiKeyOut,
    key: String,
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/api-keys",
    tag = "api-keys",
    params(TenantPath),
    request_body(content = Option<NewKey>),
    responses((status = 201, description = "The key, shown this once", body = ApiKeyCreated))
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
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
        return Err(ApiError::LimitReached {
            collection: "api_keys",
            detail: format!(
                "a tenant may have at most {MAX_KEYS_PER_TENANT} API keys; revoke one first"
            ),
        });
    }
    state.keys.created(&row.key_hash, KeyOwner::Tenant(tenant));
    Ok(HttpResponse::Created().json(ApiKeyCreated {
        listed: view(row),
        key,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/api-keys",
    tag = "api-keys",
    params(TenantPath, PageParams),
    responses((status = 200, description = "A page of the tenant's keys, oldest first", body = Page<ApiKeyOut>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let paging = parse_query::<PageParams>(&request)?.paging()?;
    list_page(
        &state.store,
        paging,
        move |db, after, limit| api_keys::list(db, &tenant, after, limit),
        |r| &r.id,
        view,
    )
    .await
}

/// Revoking the key of the request itself, or a tenant's last key, is
/// allowed: the admin key can always create another.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/api-keys/{key}",
    tag = "api-keys",
    params(ApiKeyPath),
    responses((status = 204, description = "Revoked"))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    path: Authorized<ApiKeyPath>,
) -> Result<HttpResponse, ApiError> {
    let ApiKeyPath { tenant, key: id } = path.into_inner();
    let revoked = state
        .writer
        .call(move |db| api_keys::revoke(db, &tenant, &id));
    let hash = found_or_404("api key", revoked).await?;
    state.keys.revoked(&hash);
    Ok(HttpResponse::NoContent().finish())
}

fn view(row: ApiKeyRow) -> ApiKeyOut {
    ApiKeyOut {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
    }
}
