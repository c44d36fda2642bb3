use super::auth::Authorized;
use super::deliveries::{delivery_summary, DeliverySummary};
use super::paging::{list_page, Page, Paging};
use super::problem::{found_or_404, parse_json, ApiError};
use super::query::{event_type_param, parse_query, time_range};
use super::{rfc3339, AppState, EventPath, TenantPath};
use crate::actors::router::Publish;
use crate::core::delivery::envelope::{is_operational, Envelope, OPERATIONAL_PREFIX};
use crate::core::input::domain::{parse_event_id, parse_event_type, FieldError};
use crate::ids;
use crate::store::deliveries;
use crate::store::events::{self, EventFilter, EventSummary, Ingested};
use crate::store::models::EventRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    /// Dot-separated segments of `[A-Za-z0-9_-]`; not `hookrelay.…`.
    #[serde(rename = "type")]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"
    )]
    event_type: String,
    /// Any JSON object; strings may hold anything, `\\u0000` included.
    #[schema(value_type = Object)]
    payload: Value,
    /// Generated (`evt_…`) when not given; a repeated id answers 200 with
    /// the original event.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    id: Option<String>,
}

/// What a publish created, or what the first publish of the same id or key
/// created.
#[derive(Serialize, ToSchema)]
struct Published {
    id: String,
    /// How many deliveries the event got (one per subscribed endpoint).
    deliveries: usize,
}

/// An event and each delivery's state.
#[derive(Serialize, ToSchema)]
struct EventOut {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// When it was published (RFC 3339).
    #[schema(value_type = String)]
    timestamp: Value,
    #[schema(value_type = Object)]
    payload: Value,
    deliveries: Vec<DeliverySummary>,
}

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, FieldError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= 255
                && key.chars().all(|c| c == ' ' || c.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(FieldError::new(
            IDEMPOTENCY_KEY,
            "must be 1 to 255 visible ASCII characters",
        )),
    }
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/events",
    tag = "events",
    params(
        TenantPath,
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "A publish retried with the same key answers 200 with the original event",
            min_length = 1,
            max_length = 255,
            pattern = "^[ -~]+$"
        ),
    ),
    request_body = NewEvent,
    responses(
        (status = 202, description = "The event and its deliveries are on disk", body = Published),
        (status = 200, description = "A repeated id or Idempotency-Key: the original event; nothing was created", body = Published),
    )
)]
pub async fn publish(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let input: NewEvent = parse_json(&body)?;
    let event_type = parse_event_type(&input.event_type)?;
    if is_operational(&event_type) {
        return Err(FieldError::new(
            "type",
            format!("types starting with {OPERATIONAL_PREFIX:?} are reserved for hookrelay's own events"),
        )
        .into());
    }
    state.publish_rules.admit(&tenant, &event_type).await?;
    if !input.payload.is_object() {
        return Err(FieldError::new("payload", "must be a JSON object").into());
    }
    let id = match &input.id {
        Some(id) => parse_event_id(id)?,
        None => ids::time_ordered("evt"),
    };
    let idempotency_key = idempotency_key(&request)?;
    let now = chrono::Utc::now();
    let timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = Envelope {
        id: &id,
        event_type: &event_type,
        timestamp: &timestamp,
        tenant_id: &tenant,
        data: &input.payload,
    }
    .to_body();
    let event = EventRow {
        tenant_id: tenant,
        id,
        event_type,
        body,
        idempotency_key,
        created_at: now.timestamp_millis(),
    };
    let event_id = event.id.clone();
    let ingested = state.router.send(Publish(event)).await??;
    Ok(match ingested {
        Ingested::New { deliveries } => HttpResponse::Accepted().json(Published {
            id: event_id,
            deliveries: deliveries.len(),
        }),
        Ingested::Duplicate {
            event_id,
            deliveries,
        } => HttpResponse::Ok().json(Published {
            id: event_id,
            deliveries,
        }),
    })
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/events/{event}",
    tag = "events",
    params(EventPath),
    responses((status = 200, description = "The event and each delivery's state", body = EventOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<EventPath>,
) -> Result<HttpResponse, ApiError> {
    let EventPath { tenant, event: id } = path.into_inner();
    let found = state.store.run(move |db| {
        let Some(event) = events::find(db, &tenant, &id)? else {
            return Ok(None);
        };
        let fan_out = deliveries::for_event(db, &tenant, &id)?;
        Ok(Some((event, fan_out)))
    });
    let (event, fan_out) = found_or_404("event", found).await?;
    let envelope: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(EventOut {
        id: event.id,
        event_type: event.event_type,
        timestamp: envelope["timestamp"].clone(),
        payload: envelope["data"].clone(),
        deliveries: fan_out.iter().map(delivery_summary).collect(),
    }))
}

/// The query of an event list; an unknown parameter is a 422.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only events of this type, exactly as published.
    #[param(min_length = 1, max_length = 255)]
    event_type: Option<String>,
    /// Only events published at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events published before this RFC 3339 time (after `since`).
    #[param(format = DateTime)]
    until: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    cursor: Option<String>,
}

/// An event as listed, without its payload.
#[derive(Serialize, ToSchema)]
struct EventListed {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created_at: String,
}

/// The tenant's events in id order (generated ids follow creation time),
/// without their payloads: `GET …/events/{id}` has those.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/events",
    tag = "events",
    params(TenantPath, ListParams),
    responses((status = 200, description = "A page of events, without payloads", body = Page<EventListed>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let params: ListParams = parse_query(&request)?;
    let (since, until) = time_range(params.since.as_deref(), params.until.as_deref())?;
    let filter = EventFilter {
        event_type: event_type_param(params.event_type.as_deref())?,
        since,
        until,
    };
    let paging = Paging::new(params.limit, params.cursor)?;
    list_page(
        &state.store,
        paging,
        move |db, after, limit| events::list(db, &tenant, &filter, after, limit),
        |r| &r.id,
        |r: EventSummary| EventListed {
            id: r.id,
            event_type: r.event_type,
            created_at: rfc3339(r.created_at),
        },
    )
    .await
}
