//! What the dashboard's forms do: sign in and out, and the endpoint and
//! delivery actions, each carried out through the API with the operator's
//! key. A form without its session's CSRF token, or sent from another
//! site, changes nothing (403).

use super::html;
use super::pages::login_page;
use super::{
    closed_cookie, cookie, failed, open_session, see_other, signed_in, Dashboard, SignedIn,
    UiError, LOGIN_COOKIE,
};
use crate::api::problem::ApiError;
use crate::core::input::domain::is_id;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::collections::HashMap;

type Form = HashMap<String, String>;

fn form(body: &[u8]) -> Form {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

pub async fn login(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    body: web::Bytes,
) -> HttpResponse {
    let mut fields = form(&body);
    let sent = fields.remove("csrf").unwrap_or_default();
    let expected = cookie(&request, LOGIN_COOKIE).unwrap_or_default();
    if !same_origin(&request) || expected.is_empty() || !same_token(&sent, &expected) {
        return forbidden(None);
    }
    let key = fields.remove("key").unwrap_or_default();
    let key = key.trim();
    if key.is_empty() {
        return login_page(StatusCode::UNPROCESSABLE_ENTITY, Some("Enter an API key."));
    }
    match ui.app.keys.owner_of(key).await {
        Ok(_) => {
            let cookie = open_session(&ui, &request, key.to_owned());
            let mut response = see_other("/ui");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(ApiError::Unauthorized) => {
            // Guessing keys here is held back as through the API.
            if let Some(address) = request.peer_addr().map(|peer| peer.ip()) {
                let delay = ui.app.keys.failed_from(address);
                if !delay.is_zero() {
                    actix_web::rt::time::sleep(delay).await;
                }
            }
            login_page(
                StatusCode::UNAUTHORIZED,
                Some("This key is not valid: it is unknown or was revoked."),
            )
        }
        Err(error) => {
            log::warn!("dashboard sign-in failed: {error}");
            login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("hookrelay cannot check keys right now; try again shortly."),
            )
        }
    }
}

pub async fn logout(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    body: web::Bytes,
) -> HttpResponse {
    let signed_in = match checked(&request, &ui, &body).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    ui.sessions().close(&signed_in.token);
    let mut response = see_other("/ui/login");
    if let Ok(value) = HeaderValue::from_str(&closed_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn endpoint_action(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let signed_in = match checked(&request, &ui, &body).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let (tenant, endpoint, action) = path.into_inner();
    if !is_id(&tenant) || !is_id(&endpoint) {
        return failed(UiError::NotFound, Some(&signed_in));
    }
    let (call, body): (&str, Option<Value>) = match action.as_str() {
        "disable" => ("disable", None),
        "enable-replay" => ("enable", Some(json!({"replay": "held"}))),
        "enable-cancel" => ("enable", Some(json!({"replay": "none"}))),
        "rotate-secret" => ("rotate-secret", None),
        "test" => ("test", None),
        _ => return failed(UiError::NotFound, Some(&signed_in)),
    };
    let api_path = format!("/v1/tenants/{tenant}/endpoints/{endpoint}/{call}");
    match ui.api.post(signed_in.key(), &api_path, body).await {
        Ok(_) => see_other(&format!("/ui/tenants/{tenant}/endpoints/{endpoint}")),
        Err(error) => failed(error, Some(&signed_in)),
    }
}

pub async fn retry(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let signed_in = match checked(&request, &ui, &body).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let (tenant, delivery) = path.into_inner();
    if !is_id(&tenant) || !is_id(&delivery) {
        return failed(UiError::NotFound, Some(&signed_in));
    }
    let api_path = format!("/v1/tenants/{tenant}/deliveries/{delivery}/retry");
    match ui.api.post(signed_in.key(), &api_path, None).await {
        Ok(_) => see_other(&format!("/ui/tenants/{tenant}/deliveries/{delivery}")),
        Err(error) => failed(error, Some(&signed_in)),
    }
}

/// The session of a form's request, once its CSRF token and origin are
/// checked.
async fn checked(
    request: &HttpRequest,
    ui: &Dashboard,
    body: &[u8],
) -> Result<SignedIn, HttpResponse> {
    let signed_in = signed_in(request, ui).await?;
    let sent = form(body).remove("csrf").unwrap_or_default();
    if !same_origin(request) || !same_token(&sent, signed_in.csrf()) {
        return Err(forbidden(Some(&signed_in)));
    }
    Ok(signed_in)
}

fn forbidden(signed_in: Option<&SignedIn>) -> HttpResponse {
    html::error_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was not sent from this dashboard's page (its security token is missing or stale). Reload the page and try again.",
        signed_in,
    )
}

/// A browser names the page a form came from in `Origin`; when it does,
/// it must be this host.
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// Compares in time independent of where they differ.
fn same_token(sent: &str, expected: &str) -> bool {
    sent.len() == expected.len()
        && sent
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("", "abc"));
        assert!(!same_token("abcd", "abc"));
    }
}
