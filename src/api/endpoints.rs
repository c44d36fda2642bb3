use super::problem::{parse_json, ApiError};
use super::{page, rfc3339, AppState, PageParams};
use crate::actors::endpoint::EndpointStats;
use crate::actors::router::{EndpointDeleted, EndpointSaved, StatsOf};
use crate::core::domain::{check_custom_header, parse_endpoint_url, FieldError};
use crate::core::endpoint::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT_SECONDS, MAX_MAX_IN_FLIGHT, MAX_TIMEOUT_SECONDS,
};
use crate::core::matching::EventTypePattern;
use crate::core::retry::{check_schedule, DEFAULT_SCHEDULE};
use crate::core::signing::Secret;
use crate::ids;
use crate::store::endpoints::{self, ACTIVE};
use crate::store::models::EndpointRow;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const MAX_DESCRIPTION: usize = 1024;
const MAX_EVENT_TYPES: usize = 100;

/// The writable fields; on create `url` is required, on update all are optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFields {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    headers: Option<BTreeMap<String, String>>,
    secret: Option<String>,
    timeout_seconds: Option<u32>,
    max_in_flight: Option<u32>,
    retry_schedule: Option<Vec<u32>>,
}

impl EndpointFields {
    /// Validates every given field and writes it into `row`.
    fn apply_to(self, row: &mut EndpointRow) -> Result<(), FieldError> {
        if let Some(url) = self.url {
            row.url = parse_endpoint_url(&url)?.to_string();
        }
        if let Some(description) = self.description {
            if description.chars().count() > MAX_DESCRIPTION {
                return Err(FieldError::new(
                    "description",
                    format!("may hold at most {MAX_DESCRIPTION} characters"),
                ));
            }
            row.description = description;
        }
        if let Some(event_types) = self.event_types {
            if event_types.len() > MAX_EVENT_TYPES {
                return Err(FieldError::new(
                    "event_types",
                    format!("may hold at most {MAX_EVENT_TYPES} patterns"),
                ));
            }
            let normalized = event_types
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    EventTypePattern::parse(p)
                        .map(|p| p.as_string())
                        .map_err(|reason| FieldError::new(format!("event_types[{i}]"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            row.event_types = to_json(&normalized);
        }
        if let Some(headers) = self.headers {
            for (name, value) in &headers {
                let field = || format!("headers.{name}");
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| FieldError::new(field(), "is not a valid header name"))?;
                check_custom_header(name).map_err(|reason| FieldError::new(field(), reason))?;
                HeaderValue::from_str(value)
                    .map_err(|_| FieldError::new(field(), "is not a valid header value"))?;
            }
            row.headers = to_json(&headers);
        }
        if let Some(secret) = self.secret {
            row.secret = Secret::parse(&secret)
                .map_err(|e| FieldError::new("secret", e.to_string()))?
                .as_str()
                .to_owned();
        }
        if let Some(timeout) = self.timeout_seconds {
            row.timeout_seconds = within("timeout_seconds", timeout, MAX_TIMEOUT_SECONDS)?;
        }
        if let Some(limit) = self.max_in_flight {
            row.max_in_flight = within("max_in_flight", limit, MAX_MAX_IN_FLIGHT)?;
        }
        if let Some(schedule) = self.retry_schedule {
            check_schedule(&schedule)
                .map_err(|reason| FieldError::new("retry_schedule", reason))?;
            row.retry_schedule = to_json(&schedule);
        }
        Ok(())
    }
}

fn within(field: &str, value: u32, max: u32) -> Result<i32, FieldError> {
    if (1..=max).contains(&value) {
        Ok(i32::try_from(value).unwrap_or(i32::MAX))
    } else {
        Err(FieldError::new(
            field,
            format!("must be between 1 and {max}"),
        ))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn view(row: &EndpointRow, stats: Option<EndpointStats>) -> Value {
    let mut view = json!({
        "id": row.id,
        "tenant_id": row.tenant_id,
        "url": row.url,
        "description": row.description,
        "event_types": row.event_type_list(),
        "headers": row.header_map(),
        "secret": row.secret,
        "timeout_seconds": row.timeout_seconds,
        "max_in_flight": row.max_in_flight,
        "retry_schedule": row.retry_schedule_list(),
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    });
    if let Some(stats) = stats {
        view["stats"] = json!(stats);
    }
    view
}

type TenantPath = web::Path<String>;
type EndpointPath = web::Path<(String, String)>;

pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: TenantPath,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let fields: EndpointFields = parse_json(&body)?;
    if fields.url.is_none() {
        return Err(FieldError::new("url", "is required").into());
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut row = EndpointRow {
        id: ids::time_ordered("ep"),
        tenant_id: tenant,
        url: String::new(),
        description: String::new(),
        event_types: "[]".to_owned(),
        headers: "{}".to_owned(),
        secret: Secret::from_key_bytes(&ids::random_bytes::<24>())
            .as_str()
            .to_owned(),
        timeout_seconds: i32::try_from(DEFAULT_TIMEOUT_SECONDS).unwrap_or(30),
        max_in_flight: i32::try_from(DEFAULT_MAX_IN_FLIGHT).unwrap_or(16),
        retry_schedule: to_json(&DEFAULT_SCHEDULE),
        status: ACTIVE.to_owned(),
        created_at: now,
        updated_at: now,
    };
    fields.apply_to(&mut row)?;
    let config = row.config()?;
    let stored = row.clone();
    state
        .store
        .run(move |db| endpoints::insert(db, &stored))
        .await?;
    state.router.do_send(EndpointSaved(config));
    Ok(HttpResponse::Created().json(view(&row, None)))
}

pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: TenantPath,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let limit = params.limit()?;
    let cursor = params.cursor();
    let rows = state
        .store
        .run(move |db| endpoints::list(db, &tenant, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |r| &r.id, |r| view(&r, None))))
}

async fn find(state: &AppState, tenant: &str, id: &str) -> Result<EndpointRow, ApiError> {
    let (tenant, id) = (tenant.to_owned(), id.to_owned());
    state
        .store
        .run(move |db| endpoints::find(db, &tenant, &id))
        .await?
        .ok_or(ApiError::NotFound("endpoint"))
}

pub async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let row = find(&state, &tenant, &id).await?;
    let stats = state
        .router
        .send(StatsOf(id))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(view(&row, stats)))
}

pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let fields: EndpointFields = parse_json(&body)?;
    let mut row = find(&state, &tenant, &id).await?;
    fields.apply_to(&mut row)?;
    row.updated_at = chrono::Utc::now().timestamp_millis();
    let config = row.config()?;
    let stored = row.clone();
    state
        .store
        .run(move |db| endpoints::update(db, &stored))
        .await?;
    state.router.do_send(EndpointSaved(config));
    Ok(HttpResponse::Ok().json(view(&row, None)))
}

pub async fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: EndpointPath,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let removed = id.clone();
    if !state
        .store
        .run(move |db| endpoints::delete(db, &tenant, &removed))
        .await?
    {
        return Err(ApiError::NotFound("endpoint"));
    }
    state.router.do_send(EndpointDeleted(id));
    Ok(HttpResponse::NoContent().finish())
}
