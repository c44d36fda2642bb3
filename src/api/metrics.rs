//! `/metrics`: the Prometheus text format. On the API's address it takes
//! the admin key; on `HOOKRELAY_METRICS_LISTEN` it is served without one,
//! and nothing else is served there.

use super::auth::Admin;
use super::problem::ApiError;
use super::AppState;
use crate::actors::router::CountActors;
use crate::store::gauges;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use std::time::Instant;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of this instance; the gauges read from the database
/// (deliveries waiting, endpoints by status and breaker) are the same on
/// every instance.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    security(("api_key" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
pub async fn scrape(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    render(&state).await
}

/// The same without a key, for the metrics address.
pub async fn scrape_unauthenticated(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    render(&state).await
}

async fn render(state: &AppState) -> Result<HttpResponse, ApiError> {
    if state.metrics.stored_counts_due() {
        // A scrape during an outage still answers, with the last counts.
        match state.store.run(gauges::stored_counts).await {
            Ok(counts) => state.metrics.set_stored(&counts),
            Err(error) => log::warn!("reading the counts for /metrics failed: {error}"),
        }
    }
    if let Ok(live) = state.router.send(CountActors).await {
        state.metrics.set_live_actors(live);
    }
    let text = state.metrics.render().map_err(|error| {
        log::error!("rendering the metrics failed: {error}");
        ApiError::Unavailable
    })?;
    Ok(HttpResponse::Ok().content_type(TEXT_FORMAT).body(text))
}

/// Counts publishes (`POST /v1/tenants/{tenant}/events`) by how they were
/// answered, and times them, whatever refused them: a key, a body limit, a
/// field, or the database.
pub async fn count_publishes<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let is_publish =
        request.method() == Method::POST && request.match_pattern().as_deref() == Some(PUBLISH);
    let observed = is_publish
        .then(|| request.app_data::<web::Data<AppState>>().cloned())
        .flatten()
        .map(|state| (state, tenant_of(request.path()), Instant::now()));
    let response = next.call(request).await?;
    if let Some((state, tenant, started)) = observed {
        let seconds = started.elapsed().as_secs_f64();
        state
            .metrics
            .publish_answered(&tenant, response.status().as_u16(), seconds);
    }
    Ok(response)
}

const PUBLISH: &str = "/v1/tenants/{tenant}/events";

/// The tenant of a publish's path (`/v1/tenants/{tenant}/events`).
fn tenant_of(path: &str) -> String {
    path.split('/').nth(3).unwrap_or_default().to_owned()
}
