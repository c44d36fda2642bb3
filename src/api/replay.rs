//! Debugging and replaying deliveries: an endpoint's attempts, one more
//! attempt of a delivery now, the recovery of an endpoint's failed and
//! cancelled deliveries, and a test ping.
//!
//! A manual attempt (a retry or a test) is made here, not by the endpoint's
//! actor: it is an operator's check, so it goes out whatever the breaker
//! says and does not move the endpoint's breaker or failure streak. It is
//! stored like any attempt, and what it makes of its delivery is decided by
//! [`after_manual_attempt`].

use super::auth::Authorized;
use super::deliveries::{attempt_view, delivery_view, AttemptOut, DeliveryOut};
use super::endpoints::find;
use super::paging::{Page, Paging};
use super::problem::{found_or_404, parse_json, parse_optional_json, ApiError, Problem};
use super::query::{choice_param, parse_query, time_range};
use super::{AppState, DeliveryPath, EndpointPath};
use crate::actors::router::{DeliverySettled, PendingOnDisk, Router};
use crate::core::delivery::envelope::{Envelope, TEST_EVENT_TYPE};
use crate::core::delivery::lifecycle::{
    after_manual_attempt, verdict_for_status, AttemptVerdict, DeliveryState, ManualAttempt,
};
use crate::core::endpoint::EndpointConfig;
use crate::core::input::domain::FieldError;
use crate::ids;
use crate::sender;
use crate::store::events::{self, Ingested};
use crate::store::models::{DeliveryRow, EndpointRow, EventRow};
use crate::store::replay::{
    self, AttemptFilter, ManualWrite, TimeWindow, RECOVERABLE, RECOVER_BATCH,
};
use crate::store::writer::Writer;
use crate::store::StoreError;
use crate::time::now_ms;
use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// A retry or a recovery waits until the endpoint is enabled: 409 while it
/// is disabled.
fn refuse_disabled(endpoint: &EndpointRow) -> Result<(), ApiError> {
    if endpoint.is_active() {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "endpoint is disabled; enable it first".to_owned(),
        ))
    }
}

/// The query of an endpoint's attempts; an unknown parameter is a 422.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AttemptParams {
    /// The class of the attempt's status (`none`: no answer).
    #[param(schema_with = super::schema::status_classes)]
    status_class: Option<String>,
    /// Only attempts started at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only attempts started before this RFC 3339 time (after `since`).
    #[param(format = DateTime)]
    until: Option<String>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next` of the previous page.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:-]+$")]
    cursor: Option<String>,
}

/// An attempt of an endpoint, and the delivery it was for.
#[derive(Serialize, ToSchema)]
struct EndpointAttempt {
    #[serde(flatten)]
    attempt: AttemptOut,
    delivery_id: String,
}

/// `GET …/endpoints/{id}/attempts`: newest first.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/attempts",
    tag = "replay",
    params(EndpointPath, AttemptParams),
    responses((status = 200, description = "A page of the endpoint's attempts, newest first", body = Page<EndpointAttempt>))
)]
pub async fn attempts(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let params: AttemptParams = parse_query(&request)?;
    let (since, until) = time_range(params.since.as_deref(), params.until.as_deref())?;
    let filter = AttemptFilter {
        status_class: choice_param("status_class", params.status_class.as_deref())?,
        since,
        until,
    };
    let paging = Paging::new(params.limit, params.cursor)?;
    path.find(&state).await?;
    let id = path.into_inner().endpoint;
    let rows = paging
        .read(&state.store, move |db, after, limit| {
            replay::attempts_of_endpoint(db, &id, &filter, after, limit)
        })
        .await?
        .ok_or_else(|| FieldError::new("cursor", "names no attempt of this endpoint"))?;
    Ok(HttpResponse::Ok().json(paging.page(
        rows,
        |r| &r.id,
        |r| EndpointAttempt {
            attempt: attempt_view(&r),
            delivery_id: r.delivery_id,
        },
    )))
}

/// `POST …/deliveries/{id}/retry`: one more attempt now, whatever the
/// delivery's state; refused while its endpoint is disabled.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/deliveries/{delivery}/retry",
    tag = "replay",
    params(DeliveryPath),
    responses(
        (status = 200, description = "The attempt and what it made of the delivery", body = ManualOutcome),
        (status = 202, description = "The attempt's outcome is not known yet (`attempt` is null); the delivery's attempts will show it", body = ManualOutcome),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    state: web::Data<AppState>,
    path: Authorized<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    let DeliveryPath { tenant, delivery } = path.into_inner();
    let lookup_tenant = tenant.clone();
    let found = state
        .store
        .run(move |db| replay::delivery_to_attempt(db, &lookup_tenant, &delivery));
    let (delivery, event) = found_or_404("delivery", found).await?;
    let endpoint = find(&state, &tenant, &delivery.endpoint_id).await?;
    refuse_disabled(&endpoint)?;
    let former = DeliveryState::parse(&delivery.state).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "delivery {} has the unknown state {:?}",
            delivery.id, delivery.state
        ))
    })?;
    let config = endpoint.config(&state.health_defaults, &state.secrets)?;
    attempt_now(
        &state,
        config,
        delivery,
        event,
        ManualAttempt::Retry(former),
    )
    .await
}

/// The window of event creation times whose deliveries are recovered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RecoverRequest {
    /// RFC 3339, inclusive.
    #[schema(format = DateTime)]
    since: String,
    /// RFC 3339, exclusive; later than `since`.
    #[schema(format = DateTime)]
    until: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Recovered {
    /// Deliveries queued again.
    recovered: usize,
}

/// `POST …/endpoints/{id}/recover`: queues again every failed or cancelled
/// delivery whose event was created in the window.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/recover",
    tag = "replay",
    params(EndpointPath),
    request_body = RecoverRequest,
    responses(
        (status = 200, description = "How many deliveries were queued again", body = Recovered),
        (status = 409, description = "The endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn recover(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let input: RecoverRequest = parse_json(&body)?;
    let (since, until) = time_range(Some(&input.since), input.until.as_deref())?;
    let since = since.ok_or_else(|| FieldError::new("since", "is required"))?;
    let endpoint = path.find(&state).await?;
    refuse_disabled(&endpoint)?;
    let window = TimeWindow { since, until };
    // In a task of its own, so that a caller who stops waiting does not
    // cut the recovery short between two batches.
    let recovery = actix_web::rt::spawn(recover_in_batches(
        state.writer.clone(),
        state.router.clone(),
        endpoint.id,
        window,
    ));
    let recovered = recovery.await.map_err(|_| ApiError::Unavailable)??;
    Ok(HttpResponse::Ok().json(Recovered { recovered }))
}

/// Moves the deliveries in batches, each its own writer job, and tells the
/// endpoint's actor after each that pending work waits on disk.
async fn recover_in_batches(
    writer: Writer,
    router: Addr<Router>,
    endpoint_id: String,
    window: TimeWindow,
) -> Result<usize, StoreError> {
    let mut recovered = 0;
    for from in RECOVERABLE {
        let mut after = None;
        loop {
            let (id, start) = (endpoint_id.clone(), after.clone());
            let batch = writer
                .call(move |db| {
                    replay::recover_batch(
                        db,
                        &id,
                        from,
                        window,
                        start.as_ref(),
                        RECOVER_BATCH,
                        now_ms(),
                    )
                })
                .await?;
            recovered += batch.moved;
            if batch.moved > 0 {
                router.do_send(PendingOnDisk(endpoint_id.clone()));
            }
            match batch.last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
    }
    Ok(recovered)
}

/// An empty body is allowed too.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    /// The ping's data, a JSON object (default `{"message": "test"}`).
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
}

/// `POST …/endpoints/{id}/test`: a `hookrelay.ping` event to this endpoint
/// alone, stored like any event, attempted once at once, even while the
/// endpoint is disabled (to check the receiver before enabling it).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}/test",
    tag = "replay",
    params(EndpointPath),
    request_body(content = Option<TestRequest>),
    responses(
        (status = 200, description = "The ping's delivery and its attempt", body = ManualOutcome),
        (status = 202, description = "The attempt's outcome is not known yet (`attempt` is null); the delivery's attempts will show it", body = ManualOutcome),
    )
)]
pub async fn test(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let input: TestRequest = parse_optional_json(&body)?;
    let payload = input.payload.unwrap_or_else(|| json!({"message": "test"}));
    if !payload.is_object() {
        return Err(FieldError::new("payload", "must be a JSON object").into());
    }
    let endpoint = path.find(&state).await?;
    let config = endpoint.config(&state.health_defaults, &state.secrets)?;
    let (event, delivery) = test_event(&endpoint, &payload);
    let written = {
        let (event, deliveries) = (event.clone(), [delivery.clone()]);
        state
            .writer
            .call(move |db| events::ingest_as_given(db, &event, &deliveries))
            .await?
    };
    let seq = match written {
        Ingested::New { deliveries } => deliveries
            .into_iter()
            .find(|written| written.id == delivery.id)
            .map(|written| written.seq),
        Ingested::Duplicate { .. } => None,
    };
    // None: the endpoint was deleted meanwhile.
    let Some(seq) = seq else {
        return Err(ApiError::NotFound("endpoint"));
    };
    let delivery = DeliveryRow { seq, ..delivery };
    attempt_now(&state, config, delivery, event, ManualAttempt::Test).await
}

/// The ping event and its one delivery. The delivery is stored `held`
/// while its attempt is made here: the endpoint's actor never pages held
/// deliveries in, so it does not send it too, and if the process dies
/// before the outcome is written, the actor's next start releases it (an
/// active endpoint's held deliveries are stranded ones) and sends it.
fn test_event(endpoint: &EndpointRow, payload: &Value) -> (EventRow, DeliveryRow) {
    let now = chrono::Utc::now();
    let id = ids::time_ordered("evt");
    let timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = Envelope {
        id: &id,
        event_type: TEST_EVENT_TYPE,
        timestamp: &timestamp,
        tenant_id: &endpoint.tenant_id,
        data: payload,
    }
    .to_body();
    let created_at = now.timestamp_millis();
    let delivery = DeliveryRow {
        id: ids::time_ordered("dlv"),
        tenant_id: endpoint.tenant_id.clone(),
        event_id: id.clone(),
        endpoint_id: endpoint.id.clone(),
        state: DeliveryState::Held.as_str().to_owned(),
        attempt_count: 0,
        next_attempt_at: None,
        created_at,
        updated_at: created_at,
        seq: 0,
    };
    let event = EventRow {
        tenant_id: endpoint.tenant_id.clone(),
        id,
        event_type: TEST_EVENT_TYPE.to_owned(),
        body,
        idempotency_key: None,
        created_at,
    };
    (event, delivery)
}

/// What a manual attempt made of its delivery.
#[derive(Serialize, ToSchema)]
struct ManualOutcome {
    /// The delivery after the attempt (before it, in a 202); `null` if it
    /// was deleted meanwhile.
    delivery: Option<DeliveryOut>,
    /// `null` in a 202.
    attempt: Option<ManualAttemptOut>,
}

#[derive(Serialize, ToSchema)]
struct ManualAttemptOut {
    #[serde(flatten)]
    attempt: AttemptOut,
    succeeded: bool,
}

/// How long past the endpoint's own timeout a caller waits for a manual
/// attempt's outcome (its write, on a busy writer) before the answer is a
/// 202 without it.
const OUTCOME_MARGIN: Duration = Duration::from_secs(5);

/// Sends the attempt and records it in a task of its own, so it finishes
/// even if the caller stops waiting; answers 200 with the outcome, or 202
/// when it is not known within the endpoint's timeout and a margin (the
/// delivery's attempts will show it).
async fn attempt_now(
    state: &AppState,
    config: EndpointConfig,
    delivery: DeliveryRow,
    event: EventRow,
    kind: ManualAttempt,
) -> Result<HttpResponse, ApiError> {
    let wait = config.timeout.saturating_add(OUTCOME_MARGIN);
    let pending_view = delivery_view(&delivery);
    let transport = state.transport.clone();
    let writer = state.writer.clone();
    let router = state.router.clone();
    let attempt = actix_web::rt::spawn(async move {
        // An operator's attempt takes a slot of the attempt budget like
        // any other; if it has to wait long, the caller gets a 202.
        let slot = transport.slot(&config.tenant_id).await;
        let report = sender::attempt(
            &transport,
            &config,
            &event.id,
            &event.event_type,
            &event.body,
        )
        .await;
        drop(slot);
        let verdict = match report.status {
            Some(status) => verdict_for_status(status, None, config.retry_client_errors),
            None => AttemptVerdict::Failed { retry_after: None },
        };
        let former = match kind {
            ManualAttempt::Retry(former) => former,
            ManualAttempt::Test => DeliveryState::Held,
        };
        let number = u32::try_from(delivery.attempt_count)
            .unwrap_or_default()
            .saturating_add(1);
        let write = ManualWrite {
            attempt: report.to_row(&delivery.id, number, &config.id),
            former,
            after: after_manual_attempt(kind, verdict),
        };
        let row = write.attempt.clone();
        let now = writer
            .call(move |db| replay::record_manual_attempt(db, &write, now_ms()))
            .await?;
        if former == DeliveryState::Pending
            && now.as_ref().is_some_and(|row| row.state != former.as_str())
        {
            router.do_send(DeliverySettled {
                endpoint_id: config.id.clone(),
                delivery_id: delivery.id.clone(),
                seq: delivery.seq,
            });
        }
        Ok::<_, StoreError>((row, verdict == AttemptVerdict::Delivered, now))
    });
    match actix_web::rt::time::timeout(wait, attempt).await {
        Ok(Ok(Ok((attempt, succeeded, delivery)))) => Ok(HttpResponse::Ok().json(ManualOutcome {
            delivery: delivery.as_ref().map(delivery_view),
            attempt: Some(ManualAttemptOut {
                attempt: attempt_view(&attempt),
                succeeded,
            }),
        })),
        Ok(Ok(Err(error))) => Err(error.into()),
        Ok(Err(_)) => Err(ApiError::Unavailable),
        Err(_) => Ok(HttpResponse::Accepted().json(ManualOutcome {
            delivery: Some(pending_view),
            attempt: None,
        })),
    }
}
