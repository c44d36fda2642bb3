//! The HTTP API: one module a resource. A handler parses its input into
//! domain values, calls the store or the router, and maps the result.
//!
//! What the resources share: [`auth`] (who is calling), [`guard`] (what
//! every request meets first), [`problem`] (errors as problem+json, body
//! parsing, 404s), [`query`] (query strings and the filters of lists),
//! [`paging`] (the shape of every list), [`schema`] (schemas of the OpenAPI
//! document that handlers share), [`display_name`] (the names of tenants
//! and keys) and [`openapi`] (the document, collected from the handlers);
//! [`locks`] serves the caches of [`auth`] and [`publish_rules`]. This
//! module holds the route table and the typed paths.

pub mod alerts;
pub mod api_keys;
pub mod auth;
pub mod cache_checks;
pub mod deliveries;
pub mod display_name;
pub mod endpoint_health;
pub mod endpoint_secrets;
pub mod endpoints;
pub mod event_types;
pub mod events;
pub mod guard;
pub mod health;
pub mod locks;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod problem;
pub mod publish_rules;
pub mod query;
pub mod replay;
pub mod schema;
pub mod tenants;

use crate::actors::router::Router;
use crate::core::health::limits::HealthLimits;
use crate::core::input::target_policy::TargetPolicy;
use crate::core::secrets::secret_box::SecretBox;
use crate::core::tenancy::tenant_caps::TenantCaps;
use crate::metrics::Metrics;
use crate::sender::Transport;
use crate::store::writer::Writer;
use crate::store::Store;
use actix::Addr;
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::web;
use actix_web::HttpResponse;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

pub struct AppState {
    pub store: Store,
    pub router: Addr<Router>,
    /// Endpoint deletion goes through the writer, in order with ingestion.
    pub writer: Writer,
    pub keys: auth::Keys,
    /// Whether each tenant accepts event types outside its catalog.
    pub publish_rules: publish_rules::PublishRules,
    /// Reads and writes stored endpoint secrets (sealed with
    /// `HOOKRELAY_SECRET_KEY` when set).
    pub secrets: SecretBox,
    /// The global health limits that per-endpoint overrides replace.
    pub health_defaults: HealthLimits,
    /// What a tenant key may set on its endpoints.
    pub tenant_caps: TenantCaps,
    /// What endpoint URLs may point at.
    pub targets: TargetPolicy,
    /// The HTTP clients of manual attempts (retries and endpoint tests),
    /// shared with the endpoint actors.
    pub transport: Transport,
    pub metrics: Arc<Metrics>,
}

/// Every route, registered by [`routes`] and listed in [`ROUTES`] from the
/// same table, so that the OpenAPI test can hold the document against what
/// is served: a route added here without documentation fails it.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// Path parameters are named after the resource they identify: a
        /// value that cannot be an id answers 404 naming it (see
        /// [`auth::Authorized`]). The routes of a path form one resource,
        /// so that another method on it is a 405 naming those it allows
        /// rather than a 404.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            let mut resources: Vec<(&'static str, actix_web::Resource)> = Vec::new();
            $(
                let route = web::$method().to($handler);
                match resources.iter().position(|(path, _)| *path == $path) {
                    Some(at) => {
                        let (path, resource) = resources.remove(at);
                        resources.insert(at, (path, resource.route(route)));
                    }
                    None => resources.push(($path, web::resource($path).route(route))),
                }
            )*
            for (path, resource) in resources {
                let allow = allowed_methods(path);
                cfg.service(resource.default_service(web::to(move || {
                    std::future::ready(method_not_allowed(&allow))
                })));
            }
        }

        /// Every route as (lower-case method, path template).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];
    };
}

route_table! {
    get "/healthz" => health::healthz,
    get "/openapi.json" => openapi::document,
    get "/metrics" => metrics::scrape,
    post "/v1/tenants" => tenants::create,
    get "/v1/tenants" => tenants::list,
    get "/v1/tenants/{tenant}" => tenants::get,
    patch "/v1/tenants/{tenant}" => tenants::update,
    post "/v1/tenants/{tenant}/event-types" => event_types::create,
    get "/v1/tenants/{tenant}/event-types" => event_types::list,
    get "/v1/tenants/{tenant}/event-types/{event_type}" => event_types::get,
    patch "/v1/tenants/{tenant}/event-types/{event_type}" => event_types::update,
    delete "/v1/tenants/{tenant}/event-types/{event_type}" => event_types::archive,
    post "/v1/tenants/{tenant}/api-keys" => api_keys::create,
    get "/v1/tenants/{tenant}/api-keys" => api_keys::list,
    delete "/v1/tenants/{tenant}/api-keys/{key}" => api_keys::revoke,
    post "/v1/tenants/{tenant}/endpoints" => endpoints::create,
    get "/v1/tenants/{tenant}/endpoints" => endpoints::list,
    get "/v1/tenants/{tenant}/endpoints/{endpoint}" => endpoints::get,
    patch "/v1/tenants/{tenant}/endpoints/{endpoint}" => endpoints::update,
    delete "/v1/tenants/{tenant}/endpoints/{endpoint}" => endpoints::delete,
    get "/v1/tenants/{tenant}/endpoints/{endpoint}/secret" => endpoint_secrets::get,
    post "/v1/tenants/{tenant}/endpoints/{endpoint}/rotate-secret" => endpoint_secrets::rotate,
    get "/v1/tenants/{tenant}/endpoints/{endpoint}/health" => endpoint_health::endpoint,
    post "/v1/tenants/{tenant}/endpoints/{endpoint}/disable" => endpoint_health::disable,
    post "/v1/tenants/{tenant}/endpoints/{endpoint}/enable" => endpoint_health::enable,
    get "/v1/tenants/{tenant}/health" => endpoint_health::tenant,
    get "/v1/tenants/{tenant}/alerts" => alerts::list,
    get "/v1/tenants/{tenant}/endpoints/{endpoint}/attempts" => replay::attempts,
    post "/v1/tenants/{tenant}/endpoints/{endpoint}/recover" => replay::recover,
    post "/v1/tenants/{tenant}/endpoints/{endpoint}/test" => replay::test,
    post "/v1/tenants/{tenant}/events" => events::publish,
    get "/v1/tenants/{tenant}/events" => events::list,
    get "/v1/tenants/{tenant}/events/{event}" => events::get,
    get "/v1/tenants/{tenant}/deliveries" => deliveries::list,
    get "/v1/tenants/{tenant}/deliveries/{delivery}" => deliveries::get,
    post "/v1/tenants/{tenant}/deliveries/{delivery}/retry" => replay::retry,
}

/// The methods [`ROUTES`] serves on `path`, as an `Allow` header lists them.
fn allowed_methods(path: &str) -> String {
    ROUTES
        .iter()
        .filter(|(_, served)| *served == path)
        .map(|(method, _)| method.to_uppercase())
        .collect::<Vec<_>>()
        .join(", ")
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    let mut response = problem::problem_response(
        status,
        "Method Not Allowed",
        format!("this path allows {allow}"),
        None,
    );
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

/// Errors raised outside our handlers (unknown route, bad query string,
/// oversized body) become problem+json like every other error of the API.
pub fn problem_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(as_problem)
}

fn as_problem<B>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // The dashboard's error pages are HTML for a person, and stay so.
    let is_answered = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes() == b"application/problem+json" || v.as_bytes().starts_with(b"text/html")
    });
    if is_answered {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let (request, original) = response.into_parts();
    let status = original.status();
    let detail = original
        .error()
        .map(ToString::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let title = status.canonical_reason().unwrap_or("Error");
    let problem = problem::problem_response(status, title, detail, None);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, problem).map_into_right_body::<B>(),
    ))
}

/// The ids in a route's path, named as in [`ROUTES`]. Any value that
/// cannot be an id (1 to 255 characters of `[A-Za-z0-9._:-]`) is a 404.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's id.
    pub tenant: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointPath {
    /// The tenant's id.
    pub tenant: String,
    /// The endpoint's id (`ep_…`).
    pub endpoint: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventTypePath {
    /// The tenant's id.
    pub tenant: String,
    /// The event type's name, e.g. `invoice.paid`.
    pub event_type: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    /// The tenant's id.
    pub tenant: String,
    /// The key's id (`key_…`), not the key.
    pub key: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventPath {
    /// The tenant's id.
    pub tenant: String,
    /// The event's id.
    pub event: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// The tenant's id.
    pub tenant: String,
    /// The delivery's id (`dlv_…`).
    pub delivery: String,
}

macro_rules! tenant_scoped {
    ($($path:ty),*) => {
        $(impl auth::TenantScoped for $path {
            fn tenant(&self) -> &str {
                &self.tenant
            }
        })*
    };
}

tenant_scoped!(
    TenantPath,
    EndpointPath,
    EventTypePath,
    ApiKeyPath,
    EventPath,
    DeliveryPath
);

pub use crate::time::rfc3339;
