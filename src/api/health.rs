use super::problem::ApiError;
use super::AppState;
use actix_web::{web, HttpResponse};

/// 200 while the database answers.
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.run(|db| db.ping()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}
