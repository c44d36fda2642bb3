use super::problem::{parse_json, ApiError};
use super::{page, rfc3339, AppState, PageParams};
use crate::actors::endpoint::EndpointSnapshot;
use crate::actors::router::{EndpointDeleted, EndpointSaved, SnapshotOf};
use crate::core::domain::{
    check_header_name, check_line, check_metadata, check_text, parse_endpoint_url,
    redacted_headers, unredacted_headers, FieldError,
};
use crate::core::endpoint::{EndpointConfig, HttpMethod, MAX_MAX_IN_FLIGHT, MAX_TIMEOUT_SECONDS};
use crate::core::limits::HealthLimits;
use crate::core::matching::EventTypePattern;
use crate::core::rate_limit::MAX_RATE_LIMIT;
use crate::core::retry::check_schedule;
use crate::core::secret_box::{check_storable, OpenError, SecretBox};
use crate::core::signature_scheme::SchemeName;
use crate::core::target_policy::TargetPolicy;
use crate::ids;
use crate::store::endpoints;
use crate::store::models::EndpointRow;
use crate::time::now_ms;
use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const MAX_DESCRIPTION: usize = 1024;
const MAX_EVENT_TYPES: usize = 100;
/// Upper bound of every seconds-valued health limit (30 days).
const MAX_LIMIT_SECONDS: u64 = 30 * 24 * 3600;
const MAX_ALERT_THRESHOLDS: usize = 20;
/// Failure counts are stored in 32-bit signed columns.
const MAX_FAILURE_COUNT: u32 = i32::MAX as u32;
const MAX_CUSTOM_HEADERS: usize = 50;
const MAX_HEADER_VALUE: usize = 4096;
/// Every endpoint of a tenant has an actor and a place in each fan-out.
pub const MAX_ENDPOINTS_PER_TENANT: i64 = 1000;

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
    signature_scheme: Option<String>,
    signature_header: Option<String>,
    signature_sha256_prefix: Option<bool>,
    http_method: Option<String>,
    retry_client_errors: Option<bool>,
    metadata: Option<BTreeMap<String, String>>,
    /// Absent keeps it, `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<u32>>,
    // Health-limit overrides: absent keeps the current value, `null` goes
    // back to the global setting.
    #[serde(default, deserialize_with = "present")]
    breaker_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    breaker_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    breaker_max_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    alert_thresholds: Option<Option<Vec<u32>>>,
    #[serde(default, deserialize_with = "present")]
    disable_after_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    disable_after_seconds: Option<Option<u64>>,
}

/// A field that is present, possibly `null` (absent fields take the
/// `default`, `None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl EndpointFields {
    /// Validates every given field and writes it into `row`.
    fn apply_to(self, row: &mut EndpointRow) -> Result<(), FieldError> {
        self.apply_limits_to(row)?;
        self.apply_signature_to(row)?;
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
            check_text("description", &description)?;
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
        if let Some(requested) = self.headers {
            let headers = unredacted_headers(requested, &row.header_map())?;
            if headers.len() > MAX_CUSTOM_HEADERS {
                return Err(FieldError::new(
                    "headers",
                    format!("may hold at most {MAX_CUSTOM_HEADERS} headers"),
                ));
            }
            for (name, value) in &headers {
                let field = || format!("headers.{name}");
                check_header_name(name).map_err(|reason| FieldError::new(field(), reason))?;
                if value.len() > MAX_HEADER_VALUE {
                    return Err(FieldError::new(
                        field(),
                        format!("may be at most {MAX_HEADER_VALUE} bytes long"),
                    ));
                }
                HeaderValue::from_str(value)
                    .map_err(|_| FieldError::new(field(), "is not a valid header value"))?;
                // HTTP would carry a tab; it has no use in a custom header.
                check_line(&field(), value)?;
            }
            row.headers = to_json(&headers);
        }
        if let Some(timeout) = self.timeout_seconds {
            row.timeout_seconds = within("timeout_seconds", timeout, MAX_TIMEOUT_SECONDS)?;
        }
        if let Some(limit) = self.max_in_flight {
            row.max_in_flight = within("max_in_flight", limit, MAX_MAX_IN_FLIGHT)?;
        }
        if let Some(method) = self.http_method {
            let method = HttpMethod::parse(&method)
                .map_err(|reason| FieldError::new("http_method", reason))?;
            row.http_method = method.as_str().to_owned();
        }
        if let Some(retry) = self.retry_client_errors {
            row.retry_client_errors = retry;
        }
        if let Some(limit) = self.rate_limit {
            row.rate_limit = limit
                .map(|per_second| within("rate_limit", per_second, MAX_RATE_LIMIT))
                .transpose()?;
        }
        if let Some(metadata) = self.metadata {
            check_metadata(&metadata)?;
            row.metadata = to_json(&metadata);
        }
        if let Some(schedule) = self.retry_schedule {
            check_schedule(&schedule)?;
            row.retry_schedule = to_json(&schedule);
        }
        check_signing(row)
    }

    /// Writes the signature settings and the secret; [`check_signing`]
    /// checks them together once every field is in.
    fn apply_signature_to(&self, row: &mut EndpointRow) -> Result<(), FieldError> {
        if let Some(scheme) = &self.signature_scheme {
            let scheme = SchemeName::parse(scheme)
                .map_err(|reason| FieldError::new("signature_scheme", reason))?;
            row.signature_scheme = scheme.as_str().to_owned();
        }
        let is_hex = row.signature_scheme == SchemeName::Hex.as_str();
        let shapes_hex_only = |field: &str| {
            if is_hex {
                Ok(())
            } else {
                Err(FieldError::new(
                    field,
                    "applies only when signature_scheme is hex",
                ))
            }
        };
        if let Some(header) = &self.signature_header {
            shapes_hex_only("signature_header")?;
            check_header_name(header)
                .map_err(|reason| FieldError::new("signature_header", reason))?;
            row.signature_header = header.clone();
        }
        if let Some(sha256_prefix) = self.signature_sha256_prefix {
            shapes_hex_only("signature_sha256_prefix")?;
            row.signature_sha256_prefix = sha256_prefix;
        }
        if let Some(secret) = &self.secret {
            check_storable(secret).map_err(|reason| FieldError::new("secret", reason))?;
            row.secret = secret.clone();
        }
        // A new secret or scheme replaces the secret outright: the one a
        // rotation replaced may not even fit the new scheme.
        if self.secret.is_some() || self.signature_scheme.is_some() {
            row.previous_secret = None;
            row.previous_secret_expires_at = None;
        }
        Ok(())
    }

    fn changes_max_cooldown_only(&self) -> bool {
        matches!(self.breaker_max_cooldown_seconds, Some(Some(_)))
            && self.breaker_cooldown_seconds.is_none()
    }

    /// Writes the health-limit overrides; [`checked_config`] then checks
    /// them together with the global settings.
    fn apply_limits_to(&self, row: &mut EndpointRow) -> Result<(), FieldError> {
        if let Some(failures) = self.breaker_failures {
            row.breaker_failures = failures
                .map(|f| failure_count("breaker_failures", f))
                .transpose()?;
        }
        if let Some(seconds) = self.breaker_cooldown_seconds {
            row.breaker_cooldown_seconds = seconds
                .map(|s| seconds_limit("breaker_cooldown_seconds", s))
                .transpose()?;
        }
        if let Some(seconds) = self.breaker_max_cooldown_seconds {
            row.breaker_max_cooldown_seconds = seconds
                .map(|s| seconds_limit("breaker_max_cooldown_seconds", s))
                .transpose()?;
        }
        if let Some(thresholds) = &self.alert_thresholds {
            if thresholds
                .as_ref()
                .is_some_and(|t| t.len() > MAX_ALERT_THRESHOLDS)
            {
                return Err(FieldError::new(
                    "alert_thresholds",
                    format!("may hold at most {MAX_ALERT_THRESHOLDS} counts"),
                ));
            }
            for (i, &count) in thresholds.iter().flatten().enumerate() {
                failure_count(&format!("alert_thresholds[{i}]"), count)?;
            }
            row.alert_thresholds = thresholds.as_ref().map(to_json);
        }
        if let Some(failures) = self.disable_after_failures {
            row.disable_after_failures = failures
                .map(|f| failure_count("disable_after_failures", f))
                .transpose()?;
        }
        if let Some(seconds) = self.disable_after_seconds {
            row.disable_after_seconds = seconds
                .map(|s| seconds_limit("disable_after_seconds", s))
                .transpose()?;
        }
        Ok(())
    }
}

/// Refuses a secret that cannot key the endpoint's signature scheme (a
/// scheme change may make the stored one unfit) and a custom header that
/// would repeat the signature header.
fn check_signing(row: &EndpointRow) -> Result<(), FieldError> {
    let signer = row
        .signer()
        .map_err(|reason| FieldError::new("secret", reason))?;
    match row
        .header_map()
        .keys()
        .find(|name| signer.sets_header(name))
    {
        Some(name) => Err(FieldError::new(
            format!("headers.{name}"),
            format!("carries the signature of scheme {}", row.signature_scheme),
        )),
        None => Ok(()),
    }
}

/// A count of consecutive failures, refused (never clamped) when its
/// column cannot hold it.
fn failure_count(field: &str, count: u32) -> Result<i32, FieldError> {
    i32::try_from(count)
        .map_err(|_| FieldError::new(field, format!("must be at most {MAX_FAILURE_COUNT}")))
}

fn seconds_limit(field: &str, seconds: u64) -> Result<i64, FieldError> {
    if seconds > MAX_LIMIT_SECONDS {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_LIMIT_SECONDS} seconds"),
        ));
    }
    Ok(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// The row's configuration, refused when its overrides contradict each
/// other or the global settings. A cool-down above its maximum is blamed on
/// the maximum when that is the one the request changed.
fn checked_config(
    row: &EndpointRow,
    defaults: &HealthLimits,
    changed_max_cooldown_only: bool,
    secrets: &SecretBox,
) -> Result<EndpointConfig, ApiError> {
    if let Err(refused) = HealthLimits::resolve(defaults, &row.overrides()) {
        if refused.field == "breaker_cooldown_seconds" && changed_max_cooldown_only {
            let cooldown = row
                .overrides()
                .breaker_cooldown_seconds
                .unwrap_or(defaults.breaker_cooldown.as_secs());
            return Err(FieldError::new(
                "breaker_max_cooldown_seconds",
                format!("must be at least breaker_cooldown_seconds ({cooldown})"),
            )
            .into());
        }
        return Err(refused.into());
    }
    Ok(row.config(defaults, secrets)?)
}

/// An endpoint whose stored secret this instance cannot read (encrypted
/// under a key it was not started with).
pub fn unreadable_secret(error: &OpenError) -> ApiError {
    ApiError::Conflict(format!("the endpoint's {error}"))
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

pub fn view(row: &EndpointRow, live: Option<&EndpointSnapshot>) -> Value {
    let mut view = json!({
        "id": row.id,
        "tenant_id": row.tenant_id,
        "url": row.url,
        "description": row.description,
        "event_types": row.event_type_list(),
        "headers": redacted_headers(&row.header_map()),
        "timeout_seconds": row.timeout_seconds,
        "max_in_flight": row.max_in_flight,
        "retry_schedule": row.retry_schedule_list(),
        "retry_client_errors": row.retry_client_errors,
        "http_method": row.http_method,
        "rate_limit": row.rate_limit,
        "metadata": row.metadata_map(),
        "signature_scheme": row.signature_scheme,
        "signature_header": row.signature_header,
        "signature_sha256_prefix": row.signature_sha256_prefix,
        "status": row.status,
        "disabled_at": row.disabled_at.map(rfc3339),
        "disabled_reason": row.disabled_reason,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    });
    // Each health limit: the endpoint's override, `null` for the global value;
    // shown at top level like every writable field, and grouped.
    let overrides = json!({
        "breaker_failures": row.breaker_failures,
        "breaker_cooldown_seconds": row.breaker_cooldown_seconds,
        "breaker_max_cooldown_seconds": row.breaker_max_cooldown_seconds,
        "alert_thresholds": row.overrides().alert_thresholds,
        "disable_after_failures": row.disable_after_failures,
        "disable_after_seconds": row.disable_after_seconds,
    });
    if let (Some(fields), Some(limits)) = (view.as_object_mut(), overrides.as_object()) {
        fields.extend(limits.clone());
    }
    view["overrides"] = overrides;
    if let Some(live) = live {
        view["stats"] = json!({
            "queued": live.machine.queued,
            "backlog_on_disk": live.machine.backlog_on_disk,
            "backlog_move": live.machine.moving.map(|kind| kind.as_str()),
            "in_flight": live.machine.in_flight,
            "restarts": live.restarts,
            "last_error": live.last_error,
        });
    }
    view
}

/// Refuses a URL the target policy forbids (an IP-literal host in a
/// non-public range, `http` when only `https` is allowed) before anything
/// is stored; host names are vetted when they are resolved for delivery.
fn check_target(url: &str, targets: &TargetPolicy) -> Result<(), FieldError> {
    targets
        .check_url(&parse_endpoint_url(url)?)
        .map_err(|reason| FieldError::new("url", reason))
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
    let Some(url) = &fields.url else {
        return Err(FieldError::new("url", "is required").into());
    };
    check_target(url, &state.targets)?;
    let mut row = EndpointRow::with_defaults(&ids::time_ordered("ep"), &tenant, now_ms());
    let max_only = fields.changes_max_cooldown_only();
    fields.apply_to(&mut row)?;
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
    // Through the writer, which runs one job at a time: no other create
    // can come between the count and the insert.
    let inserted = state
        .writer
        .call(move |db| {
            if endpoints::count_in_tenant(db, &stored.tenant_id)? >= MAX_ENDPOINTS_PER_TENANT {
                return Ok(false);
            }
            endpoints::insert(db, &stored)?;
            Ok(true)
        })
        .await?;
    if !inserted {
        return Err(ApiError::LimitReached(format!(
            "a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} endpoints; delete one first"
        )));
    }
    state.router.do_send(EndpointSaved(config));
    // The secret is shown here and by GET …/secret, never in a view.
    let mut created = view(&row, None);
    created["secret"] = json!(row.secret);
    Ok(HttpResponse::Created().json(created))
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
    let cursor = params.cursor()?;
    let rows = state
        .store
        .run(move |db| endpoints::list(db, &tenant, cursor.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |r| &r.id, |r| view(&r, None))))
}

pub async fn find(state: &AppState, tenant: &str, id: &str) -> Result<EndpointRow, ApiError> {
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
    let live = state
        .router
        .send(SnapshotOf(id))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(view(&row, live.as_ref())))
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
    let stored = find(&state, &tenant, &id).await?;
    let mut row = match stored.clone().opened(&state.secrets) {
        Ok(row) => row,
        // A new secret replaces the one that cannot be read.
        Err(_) if fields.secret.is_some() => EndpointRow {
            previous_secret: None,
            previous_secret_expires_at: None,
            ..stored
        },
        Err(unreadable) => return Err(unreadable_secret(&unreadable)),
    };
    if let Some(url) = &fields.url {
        check_target(url, &state.targets)?;
    }
    let max_only = fields.changes_max_cooldown_only();
    fields.apply_to(&mut row)?;
    row.updated_at = now_ms();
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
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
    // Through the writer, so that no ingestion in the same commit can
    // still insert a delivery for it.
    if !state
        .writer
        .call(move |db| endpoints::delete(db, &tenant, &removed))
        .await?
    {
        return Err(ApiError::NotFound("endpoint"));
    }
    state.router.do_send(EndpointDeleted(id));
    Ok(HttpResponse::NoContent().finish())
}
