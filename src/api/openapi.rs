//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]`
//! annotations and from the request and response types the handlers use,
//! so its shapes follow the code. Served at `GET /openapi.json`, without a
//! key. The integration test `openapi` holds `paths(...)` against the route
//! table ([`super::ROUTES`]); the unit test below holds the bounds written
//! as literals against the limits the checks enforce.

use super::{
    alerts, api_keys, deliveries, endpoint_health, endpoint_secrets, endpoints, event_types,
    events, health, metrics, replay, tenants,
};
use actix_web::HttpResponse;
use std::sync::LazyLock;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hookrelay",
        description = "Durable, signed webhook delivery. Every error is `application/problem+json`; a bad field is named in `field`."
    ),
    paths(
        health::healthz,
        document,
        metrics::scrape,
        tenants::create,
        tenants::list,
        tenants::get,
        tenants::update,
        event_types::create,
        event_types::list,
        event_types::get,
        event_types::update,
        event_types::archive,
        api_keys::create,
        api_keys::list,
        api_keys::revoke,
        endpoints::create,
        endpoints::list,
        endpoints::get,
        endpoints::update,
        endpoints::delete,
        endpoint_secrets::get,
        endpoint_secrets::rotate,
        endpoint_health::endpoint,
        endpoint_health::disable,
        endpoint_health::enable,
        endpoint_health::tenant,
        alerts::list,
        replay::attempts,
        replay::recover,
        replay::test,
        events::publish,
        events::list,
        events::get,
        deliveries::list,
        deliveries::get,
        replay::retry,
    ),
    components(schemas(super::problem::Problem)),
    modifiers(&OperationIds, &KeyRequired, &OptionalBodies, &ProblemAnswers)
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(&*DOCUMENT)
}

/// utoipa names an operation after its handler, and handlers of different
/// resources share names (`create`, `get`); prefixed with the operation's
/// tag (its resource), each is unique, as OpenAPI requires.
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let tag = operation.tags.iter().flatten().next();
                if let (Some(tag), Some(id)) = (tag, &operation.operation_id) {
                    operation.operation_id = Some(format!("{tag}.{id}"));
                }
            }
        }
    }
}

/// The name of the bearer-key security scheme.
const BEARER_KEY: &str = "api_key";

/// Every route under `/v1/` resolves the caller's key first (the admin key
/// or a tenant's; `api::auth`), so each of them is documented as needing it.
struct KeyRequired;

impl Modify for KeyRequired {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The admin key (HOOKRELAY_ADMIN_KEY) or a tenant's API key (hrk_…)",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_KEY, SecurityScheme::Http(scheme));
        for (path, item) in &mut openapi.paths.paths {
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in operations(item) {
                operation.security = Some(vec![SecurityRequirement::new(
                    BEARER_KEY,
                    Vec::<String>::new(),
                )]);
            }
        }
    }
}

/// A handler that takes `Option<T>` as its body (`request_body(content =
/// Option<T>)`) accepts an empty body, not a JSON `null`: utoipa writes
/// such a body as "`null` or T" and not required; this keeps "not
/// required" and makes the schema T.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let Some(body) = &mut operation.request_body else {
                    continue;
                };
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(choice))) = &content.schema {
                        let mut not_null = choice.items.iter().filter(|schema| !is_null(schema));
                        if let (Some(only), None) = (not_null.next(), not_null.next()) {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null))
}

/// The problem answers every operation may give, added from what the
/// operation takes (a key, path ids, a body, query parameters), so that no
/// annotation has to repeat them. Statuses an operation documents itself
/// (a 409, say) are left as written.
struct ProblemAnswers;

impl Modify for ProblemAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, description) in PROBLEMS {
            components
                .responses
                .insert(problem_name(status), problem(description).into());
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let has_body = operation.request_body.is_some();
                let takes = |place: ParameterIn| {
                    operation
                        .parameters
                        .iter()
                        .flatten()
                        .any(|parameter| parameter.parameter_in == place)
                };
                let (has_query, has_path) = (takes(ParameterIn::Query), takes(ParameterIn::Path));
                let needs_key = operation.security.is_some();
                let applies = |status: &str| match status {
                    "400" => has_body || has_query,
                    "401" | "403" => needs_key,
                    "404" => has_path,
                    "413" => has_body,
                    "422" => has_body || has_query,
                    _ => true,
                };
                for (status, _) in PROBLEMS {
                    if applies(status) {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| {
                                Ref::from_response_name(problem_name(status)).into()
                            });
                    }
                }
            }
        }
    }
}

/// Every problem status the service answers, and when.
const PROBLEMS: [(&str, &str); 8] = [
    ("400", "Malformed request: the body is not JSON, or a query parameter has the wrong type"),
    ("401", "No key, or a key that is unknown or revoked"),
    ("403", "The key may not use this route (a tenant's key on an admin route, or a write under the operator's tenant)"),
    ("404", "No such tenant or resource for this key, or a path id that cannot be an id"),
    ("413", "The body is larger than HOOKRELAY_MAX_PAYLOAD_BYTES"),
    ("422", "A field is missing, unknown or invalid, or a limit is reached (the field, or the collection at its limit, is named in `field`); nothing was changed"),
    ("503", "The database is unavailable or the service is shutting down; retry after Retry-After seconds"),
    ("default", "Any other error, as a problem"),
];

fn problem_name(status: &str) -> String {
    match status {
        "default" => "ProblemOther".to_owned(),
        status => format!("Problem{status}"),
    }
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                .build(),
        )
        .build()
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::display_name;
    use crate::api::endpoint_secrets::MAX_GRACE_SECONDS;
    use crate::core::input::domain::MAX_EVENT_TYPE;
    use crate::core::input::event_catalog::MAX_DESCRIPTION;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
    }

    fn bound(document: &Value, schema: &str, field: &str, keyword: &str) -> Option<u64> {
        document["components"]["schemas"][schema]["properties"][field][keyword].as_u64()
    }

    fn as_bound(limit: usize) -> Option<u64> {
        u64::try_from(limit).ok()
    }

    /// Bounds written as literals in `#[schema]` and `#[param]` attributes
    /// (utoipa takes no constants there), held against the limits the
    /// checks enforce, so that changing a limit without the document fails.
    #[test]
    fn literal_bounds_are_the_limits_the_code_enforces() {
        let document = document();
        let name = as_bound(display_name::MAX_NAME);
        let description = as_bound(MAX_DESCRIPTION);
        let event_type = as_bound(MAX_EVENT_TYPE);
        let grace = Some(MAX_GRACE_SECONDS);
        for (schema, field, keyword, limit) in [
            ("NewTenant", "name", "maxLength", name),
            ("TenantPatch", "name", "maxLength", name),
            ("NewKey", "name", "maxLength", name),
            ("Rotation", "grace_seconds", "maximum", grace),
            ("NewEventType", "description", "maxLength", description),
            ("EventTypePatch", "description", "maxLength", description),
            ("NewEventType", "name", "maxLength", event_type),
            ("NewEvent", "type", "maxLength", event_type),
        ] {
            assert_eq!(
                bound(&document, schema, field, keyword),
                limit,
                "{schema}.{field}"
            );
        }
        let max_page = u64::try_from(super::super::paging::MAX_PAGE).ok();
        let mut lists = 0;
        for item in document["paths"].as_object().into_iter().flatten() {
            let parameters = item.1["get"]["parameters"].as_array();
            for limit in parameters
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["name"] == "limit")
            {
                lists += 1;
                assert_eq!(limit["schema"]["maximum"].as_u64(), max_page, "{}", item.0);
            }
        }
        assert!(lists >= 6, "lists with a limit: {lists}");
    }
}
