//! The event-type catalog: the types a tenant declares it publishes. It
//! documents them and, for a tenant that refuses unknown types, decides
//! what may be published. Endpoint subscriptions are not checked against it.

use super::auth::Authorized;
use super::paging::{list_page, Page, Paging};
use super::problem::{found_or_404, parse_json, present, ApiError};
use super::query::parse_query;
use super::{rfc3339, AppState, EventTypePath, TenantPath};
use crate::core::input::domain::FieldError;
use crate::core::input::event_catalog::{
    check_description, parse_name, parse_schema, MAX_EVENT_TYPES_PER_TENANT,
};
use crate::store::event_types::{self, Created, EventTypeChanges, EventTypeRow};
use crate::time::now_ms;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEventType {
    /// Dot-separated segments of `[A-Za-z0-9_-]`; not `hookrelay.…`.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"
    )]
    name: String,
    /// Tabs and line breaks allowed, no other control characters.
    #[schema(
        max_length = 1024,
        pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
    )]
    description: Option<String>,
    /// A JSON Schema of the payload (any object up to 64 KiB), kept as
    /// documentation: payloads are not checked against it.
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
}

/// A `PATCH`: absent fields stay; `"schema": null` removes the schema.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EventTypePatch {
    /// Tabs and line breaks allowed, no other control characters.
    #[schema(
        max_length = 1024,
        pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
    )]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    schema: Option<Option<Value>>,
}

/// A declared event type.
#[derive(Serialize, ToSchema)]
struct EventTypeOut {
    name: String,
    description: String,
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
    archived: bool,
    archived_at: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `true` lists archived types too.
    #[param(value_type = Option<bool>)]
    include_archived: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    cursor: Option<String>,
}

fn view(row: EventTypeRow) -> EventTypeOut {
    let schema = row
        .json_schema
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    EventTypeOut {
        name: row.name,
        description: row.description,
        schema,
        archived: row.archived_at.is_some(),
        archived_at: row.archived_at.map(rfc3339),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

fn description(value: Option<String>) -> Result<Option<String>, FieldError> {
    value
        .map(|text| check_description(&text).map(|()| text))
        .transpose()
}

/// 201 with the type: new, or back from the archive (with the description
/// and schema of this request). 409 when it exists and is active.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/event-types",
    tag = "event-types",
    params(TenantPath),
    request_body = NewEventType,
    responses(
        (status = 201, description = "Declared, or restored from the archive", body = EventTypeOut),
        (status = 409, description = "Already declared and active", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let input: NewEventType = parse_json(&body)?;
    let name = parse_name(&input.name)?;
    let description = description(input.description)?.unwrap_or_default();
    let json_schema = input.schema.as_ref().map(parse_schema).transpose()?;
    let now = now_ms();
    let row = EventTypeRow {
        tenant_id: tenant.clone(),
        name,
        description,
        json_schema,
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    // Through the writer, which runs one job at a time: the count and the
    // insert of the per-tenant limit see no other create between them.
    let created = state
        .writer
        .call(move |db| event_types::create(db, &row))
        .await?;
    match created {
        Created::New(row) | Created::Restored(row) => {
            state.publish_rules.forget(&tenant);
            Ok(HttpResponse::Created().json(view(row)))
        }
        Created::AlreadyActive => Err(ApiError::Conflict(format!(
            "the event type {} already exists",
            input.name
        ))),
        Created::LimitReached => Err(ApiError::LimitReached {
            collection: "event_types",
            detail: format!(
                "a tenant may declare at most {MAX_EVENT_TYPES_PER_TENANT} event types, archived ones included"
            ),
        }),
    }
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/event-types",
    tag = "event-types",
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of event types, by name", body = Page<EventTypeOut>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let params: ListParams = parse_query(&request)?;
    let include_archived = match params.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(FieldError::new("include_archived", "must be true or false").into());
        }
    };
    let paging = Paging::new(params.limit, params.cursor)?;
    list_page(
        &state.store,
        paging,
        move |db, after, limit| event_types::list(db, &tenant, include_archived, after, limit),
        |r| &r.name,
        view,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/event-types/{event_type}",
    tag = "event-types",
    params(EventTypePath),
    responses((status = 200, description = "The event type, archived or not", body = EventTypeOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<EventTypePath>,
) -> Result<HttpResponse, ApiError> {
    let EventTypePath { tenant, event_type } = path.into_inner();
    let found = state
        .store
        .run(move |db| event_types::find(db, &tenant, &event_type));
    let row = found_or_404("event type", found).await?;
    Ok(HttpResponse::Ok().json(view(row)))
}

/// Changes the description or the schema; an archived type stays archived.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/event-types/{event_type}",
    tag = "event-types",
    params(EventTypePath),
    request_body = EventTypePatch,
    responses((status = 200, description = "The changed event type", body = EventTypeOut))
)]
pub async fn update(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EventTypePath>,
) -> Result<HttpResponse, ApiError> {
    let EventTypePath { tenant, event_type } = path.into_inner();
    let input: EventTypePatch = parse_json(&body)?;
    let changes = EventTypeChanges {
        description: description(input.description)?,
        json_schema: input
            .schema
            .map(|schema| schema.as_ref().map(parse_schema).transpose())
            .transpose()?,
    };
    let updated = state
        .writer
        .call(move |db| event_types::update(db, &tenant, &event_type, &changes, now_ms()));
    let row = found_or_404("event type", updated).await?;
    Ok(HttpResponse::Ok().json(view(row)))
}

/// Archives the type: it stays (listed with `include_archived=true`), and
/// a tenant that refuses unknown types refuses it from now on.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/event-types/{event_type}",
    tag = "event-types",
    params(EventTypePath),
    responses((status = 200, description = "The archived event type", body = EventTypeOut))
)]
pub async fn archive(
    state: web::Data<AppState>,
    path: Authorized<EventTypePath>,
) -> Result<HttpResponse, ApiError> {
    let EventTypePath { tenant, event_type } = path.into_inner();
    let owner = tenant.clone();
    let archived = state
        .writer
        .call(move |db| event_types::archive(db, &owner, &event_type, now_ms()));
    let row = found_or_404("event type", archived).await?;
    state.publish_rules.forget(&tenant);
    Ok(HttpResponse::Ok().json(view(row)))
}
