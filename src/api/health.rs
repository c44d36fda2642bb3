use super::problem::ApiError;
use super::AppState;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
struct Healthy {
    #[schema(example = "ok")]
    status: &'static str,
}

/// 200 while the writer commits and the database answers reads; 503 (with
/// Retry-After) otherwise, so that a load balancer sends no traffic here
/// while writes would fail.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses((status = 200, description = "The writer commits and the database answers", body = Healthy))
)]
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.writer.is_healthy() {
        return Err(StoreError::Unavailable("the writer cannot commit".to_owned()).into());
    }
    state.store.run(|db| db.ping()).await?;
    Ok(HttpResponse::Ok().json(Healthy { status: "ok" }))
}
