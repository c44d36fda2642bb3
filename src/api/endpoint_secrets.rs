//! An endpoint's signing secret: shown on its own route (never in endpoint
//! views), and rotated with a grace period during which the replaced
//! secret signs too.

use super::auth::Authorized;
use super::endpoints::unreadable_secret;
use super::problem::{parse_optional_json, ApiError};
use super::{rfc3339, AppState, EndpointPath};
use crate::actors::router::EndpointSaved;
use crate::core::input::domain::FieldError;
use crate::core::secrets::secret_box::check_storable;
use crate::core::secrets::signature_scheme::Signer;
use crate::core::secrets::signing::Secret;
use crate::ids;
use crate::store::endpoints;
use crate::store::models::EndpointRow;
use crate::store::StoreError;
use crate::time::now_ms;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// An empty body is allowed too.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rotation {
    /// Generated when not given; must fit the endpoint's signature scheme
    /// (`standard`: `whsec_<base64>` of 24 to 64 bytes; the others: 1 to
    /// 255 printable ASCII characters).
    #[schema(min_length = 1)]
    secret: Option<String>,
    /// How long the replaced secret keeps signing beside the new one
    /// (default 86400).
    #[schema(minimum = 0, maximum = 604800)]
    grace_seconds: Option<u64>,
}

/// An endpoint's signing secret.
#[derive(Serialize, ToSchema)]
struct SecretOut {
    secret: String,
    /// When the secret a rotation replaced stops signing; `null` when it
    /// no longer does.
    previous_secret_expires_at: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/secret",
    tag = "endpoint-secrets",
    params(EndpointPath),
    responses(
        (status = 200, description = "The signing secret", body = SecretOut),
        (status = 409, description = "The secret is encrypted under a key this instance was not started with", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let row = path
        .find(&state)
        .await?
        .opened(&state.secrets)
        .map_err(|unreadable| unreadable_secret(&unreadable))?;
    Ok(HttpResponse::Ok().json(secret_view(&row, now_ms())))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/rotate-secret",
    tag = "endpoint-secrets",
    params(EndpointPath),
    request_body(content = Option<Rotation>),
    responses(
        (status = 200, description = "The new secret", body = SecretOut),
        (status = 409, description = "The stored secret cannot be read and a grace period was asked for", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let input: Rotation = parse_optional_json(&body)?;
    let grace_seconds = input.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(FieldError::new(
            "grace_seconds",
            format!("must be between 0 and {MAX_GRACE_SECONDS} (7 days)"),
        )
        .into());
    }
    let stored = path.find(&state).await?;
    let mut row = match stored.clone().opened(&state.secrets) {
        Ok(row) => row,
        // Without a grace period nothing of the unreadable secret is kept.
        Err(_) if grace_seconds == 0 => stored,
        Err(unreadable) => return Err(unreadable_secret(&unreadable)),
    };
    let new_secret = match input.secret {
        Some(secret) => checked_secret(&row, secret)?,
        None => Secret::from_key_bytes(&ids::random_bytes::<24>())
            .as_str()
            .to_owned(),
    };
    let now = now_ms();
    let replaced = std::mem::replace(&mut row.secret, new_secret);
    // grace_seconds ≤ 7 days, so the product cannot overflow.
    let grace_ms = i64::try_from(grace_seconds * 1000).unwrap_or(i64::MAX);
    (row.previous_secret, row.previous_secret_expires_at) = if grace_seconds > 0 {
        (Some(replaced), Some(now.saturating_add(grace_ms)))
    } else {
        (None, None)
    };
    // Strictly later: instances tell a changed configuration by it.
    row.updated_at = now.max(row.updated_at + 1);
    let config = row.config(&state.health_defaults, &state.secrets)?;
    let sealed = row.sealed(&state.secrets);
    state
        .store
        .run(move |db| endpoints::update(db, &sealed))
        .await?;
    state.router.do_send(EndpointSaved(config));
    Ok(HttpResponse::Ok().json(secret_view(&row, now)))
}

/// A given secret, refused (naming `secret`) unless it can key the
/// endpoint's signature scheme.
fn checked_secret(row: &EndpointRow, secret: String) -> Result<String, ApiError> {
    let settings = row.signature_settings().map_err(|reason| {
        ApiError::Store(StoreError::Corrupt(format!(
            "endpoint {} column signature_scheme: {reason}",
            row.id
        )))
    })?;
    check_storable(&secret).map_err(|reason| FieldError::new("secret", reason))?;
    Signer::new(&settings, &secret).map_err(|reason| FieldError::new("secret", reason))?;
    Ok(secret)
}

/// The secret of a row whose secrets are opened, and when the one it
/// replaced stops signing (`null` when it no longer does).
fn secret_view(row: &EndpointRow, now: i64) -> SecretOut {
    let previous_expires = row
        .previous_secret_expires_at
        .filter(|&expires| row.previous_secret.is_some() && expires > now);
    SecretOut {
        secret: row.secret.clone(),
        previous_secret_expires_at: previous_expires.map(rfc3339),
    }
}
