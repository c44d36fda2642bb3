//! An endpoint: created, listed, read, changed and deleted. A request's
//! fields are declared in `fields` and checked and written into the row by
//! `apply`; [`views`] is what the API shows of an endpoint. [`find`] (and
//! `EndpointPath::find`, for the endpoint a route's path names) and
//! [`unreadable_secret`] serve the other handlers of an endpoint too.

mod apply;
mod fields;
pub mod views;

use super::auth::Authorized;
use super::paging::{list_page, Page, PageParams};
use super::problem::{found_or_404, parse_json, ApiError};
use super::query::parse_query;
use super::{AppState, EndpointPath, TenantPath};
use crate::actors::router::{EndpointDeleted, EndpointSaved, SnapshotOf};
use crate::core::endpoint::MAX_ENDPOINTS_PER_TENANT;
use crate::core::input::domain::{parse_endpoint_url, FieldError};
use crate::core::input::target_policy::TargetPolicy;
use crate::core::secrets::secret_box::OpenError;
use crate::ids;
use crate::store::endpoints;
use crate::store::models::EndpointRow;
use crate::time::now_ms;
use actix_web::{web, HttpRequest, HttpResponse};
use apply::checked_config;
use fields::{EndpointFields, NewEndpoint};
use views::{view, EndpointCreated, EndpointOut};

/// Refuses a URL the target policy forbids (an IP-literal host in a
/// non-public range, `http` when only `https` is allowed) before anything
/// is stored; host names are vetted when they are resolved for delivery.
fn check_target(url: &str, targets: &TargetPolicy) -> Result<(), FieldError> {
    targets
        .check_url(&parse_endpoint_url(url)?)
        .map_err(|reason| FieldError::new("url", reason))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints",
    tag = "endpoints",
    params(TenantPath),
    request_body = NewEndpoint,
    responses((status = 201, description = "The endpoint, with its secret", body = EndpointCreated))
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let caps = (!path.by_admin()).then_some(state.tenant_caps);
    let TenantPath { tenant } = path.into_inner();
    let fields: EndpointFields = parse_json(&body)?;
    let Some(url) = &fields.url else {
        return Err(FieldError::new("url", "is required").into());
    };
    check_target(url, &state.targets)?;
    let mut row = EndpointRow::with_defaults(&ids::time_ordered("ep"), &tenant, now_ms());
    let max_only = fields.changes_max_cooldown_only();
    fields.apply_to(&mut row)?;
    if let Some(caps) = &caps {
        caps.check_timeout(None, row.timeout_seconds.unsigned_abs())?;
    }
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
    // Through the writer, which runs one job at a time, and under the
    // tenant's totals lock, which other instances take too: no other create
    // or update can come between the count (or sum) and the insert.
    state
        .writer
        .call(move |db| {
            db.lock_tenant_totals(&stored.tenant_id)?;
            if endpoints::count_in_tenant(db, &stored.tenant_id)? >= MAX_ENDPOINTS_PER_TENANT {
                return Ok(Err(ApiError::LimitReached {
                    collection: "endpoints",
                    detail: format!(
                        "a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} endpoints; \
                         delete one first"
                    ),
                }));
            }
            if let Some(caps) = &caps {
                let others = endpoints::in_flight_total(db, &stored.tenant_id, &stored.id)?;
                if let Err(refused) =
                    caps.check_in_flight(None, stored.max_in_flight.unsigned_abs(), others)
                {
                    return Ok(Err(refused.into()));
                }
            }
            endpoints::insert(db, &stored)?;
            Ok(Ok(()))
        })
        .await??;
    state.router.do_send(EndpointSaved(config));
    // The secret is shown here and by GET …/secret, never in a view.
    Ok(HttpResponse::Created().json(EndpointCreated {
        endpoint: view(&row, None),
        secret: row.secret,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints",
    tag = "endpoints",
    params(TenantPath, PageParams),
    responses((status = 200, description = "A page of endpoints", body = Page<EndpointOut>))
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
        move |db, after, limit| endpoints::list(db, &tenant, after, limit),
        |r| &r.id,
        |r| view(&r, None),
    )
    .await
}

/// The tenant's endpoint `id`, with its secrets sealed as stored; a 404
/// when the tenant has no such endpoint.
pub async fn find(state: &AppState, tenant: &str, id: &str) -> Result<EndpointRow, ApiError> {
    let (tenant, id) = (tenant.to_owned(), id.to_owned());
    let found = state.store.run(move |db| endpoints::find(db, &tenant, &id));
    found_or_404("endpoint", found).await
}

impl EndpointPath {
    /// The endpoint the path names, as [`find`] finds it.
    pub async fn find(&self, state: &AppState) -> Result<EndpointRow, ApiError> {
        find(state, &self.tenant, &self.endpoint).await
    }
}

/// An endpoint whose stored secret this instance cannot read (encrypted
/// under a key it was not started with).
pub fn unreadable_secret(error: &OpenError) -> ApiError {
    ApiError::Conflict(format!("the endpoint's {error}"))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, description = "The endpoint and its actor's live figures", body = EndpointOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let row = path.find(&state).await?;
    let live = state.router.send(SnapshotOf(path.endpoint.clone())).await?;
    Ok(HttpResponse::Ok().json(view(&row, live.as_ref())))
}

#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointFields,
    responses(
        (status = 200, description = "The changed endpoint", body = EndpointOut),
        (status = 409, description = "The stored secret cannot be read and no new one was given", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let caps = (!path.by_admin()).then_some(state.tenant_caps);
    let fields: EndpointFields = parse_json(&body)?;
    let stored = path.find(&state).await?;
    let before_in_flight = stored.max_in_flight.unsigned_abs();
    let before_timeout = stored.timeout_seconds.unsigned_abs();
    let mut row = match stored.clone().opened(&state.secrets) {
        Ok(row) => row,
        // A new secret replaces the one that cannot be read.
        Err(_) if fields.secret.is_some() => EndpointRow {
            previous_secret: None,
            previous_secret_expires_at: None,
            ..stored
        },
        Err(unreadable) => return Err(unreadable_secret(&unreadable)),
    };
    if let Some(url) = &fields.url {
        check_target(url, &state.targets)?;
    }
    let max_only = fields.changes_max_cooldown_only();
    fields.apply_to(&mut row)?;
    // Strictly later: instances tell a changed configuration by it.
    row.updated_at = now_ms().max(row.updated_at + 1);
    if let Some(caps) = &caps {
        caps.check_timeout(Some(before_timeout), row.timeout_seconds.unsigned_abs())?;
    }
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
    // Through the writer and under the tenant's totals lock, as a create:
    // no other change to the tenant's endpoints comes between the sum and
    // the update.
    state
        .writer
        .call(move |db| {
            if let Some(caps) = &caps {
                db.lock_tenant_totals(&stored.tenant_id)?;
                let others = endpoints::in_flight_total(db, &stored.tenant_id, &stored.id)?;
                let after = stored.max_in_flight.unsigned_abs();
                if let Err(refused) = caps.check_in_flight(Some(before_in_flight), after, others) {
                    return Ok(Err(refused));
                }
            }
            endpoints::update(db, &stored)?;
            Ok(Ok(()))
        })
        .await??;
    state.router.do_send(EndpointSaved(config));
    Ok(HttpResponse::Ok().json(view(&row, None)))
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let EndpointPath { tenant, endpoint } = path.into_inner();
    let removed = endpoint.clone();
    // Through the writer, so that no ingestion in the same commit can
    // still insert a delivery for it.
    if !state
        .writer
        .call(move |db| endpoints::delete(db, &tenant, &removed))
        .await?
    {
        return Err(ApiError::NotFound("endpoint"));
    }
    state.router.do_send(EndpointDeleted(endpoint));
    Ok(HttpResponse::NoContent().finish())
}
