//! The operator's dashboard at `/ui`: server-rendered HTML, no JavaScript,
//! every asset in the binary. It signs in with an API key (the admin key
//! sees every tenant, a tenant key its own), keeps the key in a session
//! named by an HttpOnly, SameSite=Strict cookie, and reads and acts through
//! the JSON API with that key ([`client`]). Every form carries the
//! session's CSRF token; every page is sent with a strict
//! Content-Security-Policy.

mod actions;
mod charts;
mod client;
mod html;
mod pages;
mod sessions;

use crate::api::AppState;
use crate::ids;
use crate::store::tenants::KeyOwner;
use crate::time::now_ms;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use client::ApiClient;
use client::UiError;
use sessions::{Session, Sessions, SESSION_MS};
use std::sync::{Mutex, PoisonError};

/// No script, no frame, no outside resource: the stylesheet comes from
/// here and forms post here only. Receivers' answers shown on the pages
/// are escaped, and would not run even if they were not.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const COOKIE: &str = "hookrelay_session";

/// What the dashboard's handlers share.
pub struct Dashboard {
    api: ApiClient,
    /// The API's state: its key cache answers who a session's key is.
    app: web::Data<AppState>,
    sessions: Mutex<Sessions>,
}

impl Dashboard {
    pub fn new(api: ApiClient, app: web::Data<AppState>) -> Dashboard {
        Dashboard {
            api,
            app,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                    .add(("X-Content-Type-Options", "nosniff"))
                    // `no-referrer` would make the browser send `Origin: null` with
                    // the forms, which the origin check refuses.
                    .add(("Referrer-Policy", "same-origin"))
                    .add(("Cache-Control", "no-store")),
            )
            .route("", web::get().to(pages::home))
            .route("/", web::get().to(pages::home))
            .route("/style.css", web::get().to(pages::stylesheet))
            .route("/login", web::get().to(pages::login_form))
            .route("/login", web::post().to(actions::login))
            .route("/logout", web::post().to(actions::logout))
            .route("/tenants", web::get().to(pages::tenants))
            .route("/tenants/{tenant}", web::get().to(pages::tenant))
            .route("/tenants/{tenant}/alerts", web::get().to(pages::alerts))
            .route("/tenants/{tenant}/events", web::get().to(pages::event))
            .route(
                "/tenants/{tenant}/endpoints/{endpoint}",
                web::get().to(pages::endpoint),
            )
            .route(
                "/tenants/{tenant}/endpoints/{endpoint}/{action}",
                web::post().to(actions::endpoint_action),
            )
            .route(
                "/tenants/{tenant}/deliveries/{delivery}",
                web::get().to(pages::delivery),
            )
            .route(
                "/tenants/{tenant}/deliveries/{delivery}/retry",
                web::post().to(actions::retry),
            )
            .default_service(web::to(pages::not_found)),
    );
}

/// The signed-in operator of a request.
pub struct SignedIn {
    token: String,
    session: Session,
    owner: KeyOwner,
}

impl SignedIn {
    fn key(&self) -> &str {
        &self.session.key
    }

    fn csrf(&self) -> &str {
        &self.session.csrf
    }

    fn is_admin(&self) -> bool {
        self.owner == KeyOwner::Admin
    }

    /// Where this operator starts: every tenant, or their own.
    fn home(&self) -> String {
        match &self.owner {
            KeyOwner::Admin => "/ui/tenants".to_owned(),
            KeyOwner::Tenant(tenant) => format!("/ui/tenants/{tenant}"),
        }
    }
}

/// The request's session, its key checked again (a revoked key ends it);
/// otherwise the answer to give: to the sign-in page.
async fn signed_in(request: &HttpRequest, ui: &Dashboard) -> Result<SignedIn, HttpResponse> {
    let token = session_token(request).ok_or_else(to_login)?;
    let session = ui.sessions().get(&token, now_ms()).ok_or_else(to_login)?;
    match ui.app.keys.owner_of(&session.key).await {
        Ok(owner) => Ok(SignedIn {
            token,
            session,
            owner,
        }),
        Err(_) => {
            ui.sessions().close(&token);
            Err(to_login())
        }
    }
}

/// Opens a session for `key` and answers the cookie that names it; a
/// `Secure` one when the browser came over HTTPS (as a proxy in front
/// says with `X-Forwarded-Proto` or `Forwarded`).
fn open_session(ui: &Dashboard, request: &HttpRequest, key: String) -> String {
    let token = URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let csrf = URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    ui.sessions().open(token.clone(), key, csrf, now_ms());
    let secure = if request.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_MS / 1000
    )
}

/// The cookie that ends the session in the browser.
fn closed_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn session_token(request: &HttpRequest) -> Option<String> {
    cookie(request, COOKIE)
}

/// The sign-in form's CSRF token, sent with the form and in a cookie of
/// its own (there is no session yet): a form posted from elsewhere has
/// neither the cookie (`SameSite=Strict`) nor the token.
const LOGIN_COOKIE: &str = "hookrelay_login";

/// A new sign-in token, and the cookie that carries it.
fn login_token() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let cookie =
        format!("{LOGIN_COOKIE}={token}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    (token, cookie)
}

fn cookie(request: &HttpRequest, wanted: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

fn to_login() -> HttpResponse {
    see_other("/ui/login")
}

/// 303 to `location`: after a form, the browser gets the page.
fn see_other(location: &str) -> HttpResponse {
    let mut response = HttpResponse::SeeOther().finish();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The page for a failed call: sign in again, not found, or the reason.
fn failed(error: UiError, signed_in: Option<&SignedIn>) -> HttpResponse {
    match error {
        UiError::SignIn => to_login(),
        UiError::NotFound => html::error_page(
            actix_web::http::StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here that this key may see.",
            signed_in,
        ),
        UiError::Refused(reason) => html::error_page(
            actix_web::http::StatusCode::CONFLICT,
            "Refused",
            &reason,
            signed_in,
        ),
        UiError::Unavailable(reason) => html::error_page(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            &reason,
            signed_in,
        ),
    }
}
