use super::problem::ApiError;
use super::AppState;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};

/// 200 while the writer commits and the database answers reads; 503 (with
/// Retry-After) otherwise, so that a load balancer sends no traffic here
/// while writes would fail.
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.writer.is_healthy() {
        return Err(StoreError::Unavailable("the writer cannot commit".to_owned()).into());
    }
    state.store.run(|db| db.ping()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}
