use super::deliveries::delivery_summary;
use super::problem::{parse_json, ApiError};
use super::{event_type_param, page, parse_query, rfc3339, time_range, AppState, PageParams};
use crate::actors::router::Publish;
use crate::core::domain::{parse_event_id, parse_event_type, FieldError};
use crate::core::envelope::{is_operational, Envelope, OPERATIONAL_PREFIX};
use crate::ids;
use crate::store::deliveries;
use crate::store::events::{self, EventFilter, EventSummary, Ingested};
use crate::store::models::EventRow;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    #[serde(rename = "type")]
    event_type: String,
    payload: Value,
    id: Option<String>,
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

pub async fn publish(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
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
    let ingested = state
        .router
        .send(Publish(event))
        .await
        .map_err(|_| ApiError::Unavailable)??;
    Ok(match ingested {
        Ingested::New { delivery_ids } => {
            HttpResponse::Accepted().json(json!({"id": event_id, "deliveries": delivery_ids.len()}))
        }
        Ingested::Duplicate {
            event_id,
            deliveries,
        } => HttpResponse::Ok().json(json!({"id": event_id, "deliveries": deliveries})),
    })
}

pub async fn get(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, id) = path.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let found = state
        .store
        .run(move |db| {
            let Some(event) = events::find(db, &tenant, &id)? else {
                return Ok(None);
            };
            let fan_out = deliveries::for_event(db, &tenant, &id)?;
            Ok(Some((event, fan_out)))
        })
        .await?;
    let (event, fan_out) = found.ok_or(ApiError::NotFound("event"))?;
    let envelope: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(json!({
        "id": event.id,
        "type": event.event_type,
        "timestamp": envelope["timestamp"],
        "payload": envelope["data"],
        "deliveries": fan_out.iter().map(delivery_summary).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The tenant's events in id order (generated ids follow creation time),
/// without their payloads: `GET …/events/{id}` has those.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = tenant.into_inner();
    state.keys.require_tenant(&request, &tenant).await?;
    let params: ListParams = parse_query(&request)?;
    let (since, until) = time_range(params.since.as_deref(), params.until.as_deref())?;
    let filter = EventFilter {
        event_type: event_type_param(params.event_type.as_deref())?,
        since,
        until,
    };
    let paging = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    let rows = state
        .store
        .run(move |db| events::list(db, &tenant, &filter, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |r| &r.id,
        |r: EventSummary| {
            json!({
                "id": r.id,
                "type": r.event_type,
                "created_at": rfc3339(r.created_at),
            })
        },
    )))
}
