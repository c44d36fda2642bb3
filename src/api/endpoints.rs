use super::auth::Authorized;
use super::paging::{list_page, Page, PageParams};
use super::problem::{found_or_404, parse_json, ApiError};
use super::query::parse_query;
use super::{rfc3339, AppState, EndpointPath, TenantPath};
use crate::actors::endpoint::EndpointSnapshot;
use crate::actors::router::{EndpointDeleted, EndpointSaved, SnapshotOf};
use crate::core::domain::{
    check_header_name, check_line, check_metadata, check_text, is_secret_header,
    parse_endpoint_url, redacted_headers, unredacted_headers, FieldError, MAX_EVENT_TYPE,
    MAX_HEADER_NAME, MAX_METADATA_ENTRIES, MAX_METADATA_KEY, MAX_METADATA_VALUE, MAX_URL,
};
use crate::core::endpoint::{
    EndpointConfig, HttpMethod, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT_SECONDS,
    MAX_ENDPOINTS_PER_TENANT, MAX_MAX_IN_FLIGHT, MAX_TIMEOUT_SECONDS,
};
use crate::core::limits::{
    HealthLimits, HealthOverrides, MAX_ALERT_THRESHOLDS, MAX_FAILURE_COUNT, MAX_LIMIT_SECONDS,
};
use crate::core::matching::EventTypePattern;
use crate::core::rate_limit::MAX_RATE_LIMIT;
use crate::core::retry::{check_schedule, MAX_DELAY, MAX_SCHEDULE_LEN, MIN_DELAY_SECONDS};
use crate::core::secret_box::{check_storable, OpenError, SecretBox};
use crate::core::signature_scheme::SchemeName;
use crate::core::target_policy::TargetPolicy;
use crate::ids;
use crate::store::endpoints;
use crate::store::models::EndpointRow;
use crate::time::now_ms;
use actix_web::http::header::HeaderValue;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{Object, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

const MAX_DESCRIPTION: usize = 1024;
const MAX_EVENT_TYPES: usize = 100;
const MAX_CUSTOM_HEADERS: usize = 50;
const MAX_HEADER_VALUE: usize = 4096;

// The schemas of the bounded fields are built from the limits the checks
// below enforce, so the document shows what the code does.
/// An endpoint's writable fields. On create `url` is required; on update
/// every field is optional, and an absent one keeps its value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointFields {
    /// An absolute `http` or `https` URL without credentials.
    #[schema(schema_with = url_schema)]
    url: Option<String>,
    /// Tabs and line breaks allowed, no other control characters.
    #[schema(schema_with = description_schema)]
    description: Option<String>,
    /// Patterns: `*`, `invoice.*` or an exact type; empty = every event.
    #[schema(schema_with = event_types_schema)]
    event_types: Option<Vec<String>>,
    /// Sent with every attempt; `********` keeps a stored credential value.
    #[schema(schema_with = headers_schema)]
    headers: Option<BTreeMap<String, String>>,
    /// Names of headers whose values are secret like credential-like
    /// names: shown as `********`, sealed at rest. Any case; a name need not
    /// be one of `headers` yet.
    #[schema(schema_with = secret_headers_schema)]
    secret_headers: Option<Vec<String>>,
    /// Generated (`whsec_…`) when not given. `standard`: `whsec_<base64>`
    /// of 24 to 64 bytes; the other schemes: 1 to 255 printable ASCII
    /// characters.
    #[schema(min_length = 1)]
    secret: Option<String>,
    /// A tenant key may set at most the operator's cap (60 by default).
    #[schema(schema_with = timeout_schema)]
    timeout_seconds: Option<u32>,
    /// A tenant key may set it only while the sum over the tenant's
    /// endpoints stays within the operator's cap (16,000 by default).
    #[schema(schema_with = max_in_flight_schema)]
    max_in_flight: Option<u32>,
    /// Delays between attempts, in seconds.
    #[schema(schema_with = retry_schedule_schema)]
    retry_schedule: Option<Vec<u32>>,
    #[schema(schema_with = scheme_name_schema)]
    signature_scheme: Option<String>,
    /// `hex` only.
    #[schema(schema_with = signature_header_schema)]
    signature_header: Option<String>,
    /// `hex` only.
    signature_sha256_prefix: Option<bool>,
    /// `POST`, `PUT` or `PATCH`, in any case.
    #[schema(pattern = "^([Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh])$")]
    http_method: Option<String>,
    /// `false`: a 4xx other than 408 and 429 fails the delivery at once.
    retry_client_errors: Option<bool>,
    /// Your own labels, stored and shown, never sent.
    #[schema(schema_with = metadata_schema)]
    metadata: Option<BTreeMap<String, String>>,
    /// Most attempts a second. Absent keeps it, `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = rate_limit_schema)]
    rate_limit: Option<Option<u32>>,
    /// `true`: one delivery at a time, in event order; one waiting for its
    /// retry holds back every later one until it succeeds or fails for good.
    ordered: Option<bool>,
    // Health-limit overrides: absent keeps the current value, `null` goes
    // back to the global setting.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = failure_count_schema)]
    breaker_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    breaker_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    breaker_max_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = alert_thresholds_schema)]
    alert_thresholds: Option<Option<Vec<u32>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = failure_count_schema)]
    disable_after_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    disable_after_seconds: Option<Option<u64>>,
}

/// The body of a create: [`EndpointFields`] with `url` required (checked
/// by `create`).
struct NewEndpoint;

impl PartialSchema for NewEndpoint {
    fn schema() -> RefOr<Schema> {
        let mut schema = EndpointFields::schema();
        if let RefOr::T(Schema::Object(fields)) = &mut schema {
            fields.required.push("url".to_owned());
        }
        schema
    }
}

impl ToSchema for NewEndpoint {}

/// A JSON type, or `null` where `null` means "absent" or "the global value".
fn or_null(kind: Type) -> SchemaType {
    SchemaType::from_iter([kind, Type::Null])
}

/// Text on one line: no control characters (`char::is_control`).
const ONE_LINE: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A custom header's value: visible ASCII and spaces (`HeaderValue::from_str`
/// without the tab that `check_line` refuses).
const HEADER_VALUE: &str = "^[ -~]*$";
/// Free text: tab and line breaks, no other control characters.
const FREE_TEXT: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";

fn text(max_length: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_length))
}

fn integer(minimum: u64, maximum: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(Some(maximum))
}

fn url_schema() -> Object {
    text(MAX_URL)
        .schema_type(or_null(Type::String))
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .build()
}

fn description_schema() -> Object {
    text(MAX_DESCRIPTION)
        .schema_type(or_null(Type::String))
        .pattern(Some(FREE_TEXT))
        .build()
}

fn signature_header_schema() -> Object {
    text(MAX_HEADER_NAME)
        .min_length(Some(1))
        .schema_type(or_null(Type::String))
        .build()
}

fn event_types_schema() -> Array {
    ArrayBuilder::new()
        .schema_type(or_null(Type::Array))
        .items(text(MAX_EVENT_TYPE).min_length(Some(1)))
        .max_items(Some(MAX_EVENT_TYPES))
        .build()
}

fn headers_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(or_null(Type::Object))
        .additional_properties(Some(text(MAX_HEADER_VALUE).pattern(Some(HEADER_VALUE))))
        .property_names(Some(text(MAX_HEADER_NAME).min_length(Some(1))))
        .max_properties(Some(MAX_CUSTOM_HEADERS))
        .build()
}

fn secret_headers_schema() -> Array {
    ArrayBuilder::new()
        .schema_type(or_null(Type::Array))
        .items(text(MAX_HEADER_NAME).min_length(Some(1)))
        .max_items(Some(MAX_CUSTOM_HEADERS))
        .build()
}

fn metadata_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(or_null(Type::Object))
        .additional_properties(Some(text(MAX_METADATA_VALUE).pattern(Some(ONE_LINE))))
        .property_names(Some(
            text(MAX_METADATA_KEY)
                .min_length(Some(1))
                .pattern(Some("^[A-Za-z0-9._:-]+$")),
        ))
        .max_properties(Some(MAX_METADATA_ENTRIES))
        .build()
}

fn timeout_schema() -> Object {
    integer(1, MAX_TIMEOUT_SECONDS.into())
        .schema_type(or_null(Type::Integer))
        .default(Some(DEFAULT_TIMEOUT_SECONDS.into()))
        .build()
}

fn max_in_flight_schema() -> Object {
    integer(1, MAX_MAX_IN_FLIGHT.into())
        .schema_type(or_null(Type::Integer))
        .default(Some(DEFAULT_MAX_IN_FLIGHT.into()))
        .build()
}

fn retry_schedule_schema() -> Array {
    ArrayBuilder::new()
        .schema_type(or_null(Type::Array))
        .items(integer(MIN_DELAY_SECONDS.into(), MAX_DELAY.as_secs()))
        .max_items(Some(MAX_SCHEDULE_LEN))
        .build()
}

fn rate_limit_schema() -> Object {
    integer(1, MAX_RATE_LIMIT.into())
        .schema_type(or_null(Type::Integer))
        .build()
}

fn scheme_name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(or_null(Type::String))
        .enum_values(Some(
            SchemeName::ALL
                .iter()
                .map(|scheme| Some(scheme.as_str()))
                .chain([None]),
        ))
        .description(Some("How deliveries are signed (default `standard`)"))
        .build()
}

fn failure_count_schema() -> Object {
    integer(0, MAX_FAILURE_COUNT.into())
        .schema_type(or_null(Type::Integer))
        .build()
}

fn limit_seconds_schema() -> Object {
    integer(0, MAX_LIMIT_SECONDS)
        .schema_type(or_null(Type::Integer))
        .build()
}

fn alert_thresholds_schema() -> Array {
    ArrayBuilder::new()
        .schema_type(or_null(Type::Array))
        .items(integer(0, MAX_FAILURE_COUNT.into()))
        .max_items(Some(MAX_ALERT_THRESHOLDS))
        .build()
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
        let marked_before = row.secret_header_list();
        let marking = self.secret_headers.is_some();
        if let Some(names) = self.secret_headers {
            row.secret_headers = to_json(&secret_header_names(names)?);
        }
        if let Some(requested) = self.headers {
            // A value masked by the view it came from, or marked secret by
            // this request, may be sent back as the placeholder.
            let mut masked = marked_before.clone();
            masked.extend(row.secret_header_list());
            let headers = unredacted_headers(requested, &row.header_map(), &masked)?;
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
                // A credential's value is stored sealed when a key is set,
                // and a plain one must never read as sealed.
                if row.is_secret_header(name) {
                    check_storable(value).map_err(|reason| FieldError::new(field(), reason))?;
                }
            }
            row.headers = to_json(&headers);
        } else if marking {
            // A stored value newly marked secret will be sealed.
            for (name, value) in row.header_map() {
                if row.is_secret_header(&name) && !is_secret_header(&name, &marked_before) {
                    check_storable(&value)
                        .map_err(|reason| FieldError::new(format!("headers.{name}"), reason))?;
                }
            }
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
        if let Some(ordered) = self.ordered {
            row.ordered = ordered;
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

/// Valid header names, lowercased, each once.
fn secret_header_names(names: Vec<String>) -> Result<Vec<String>, FieldError> {
    if names.len() > MAX_CUSTOM_HEADERS {
        return Err(FieldError::new(
            "secret_headers",
            format!("may hold at most {MAX_CUSTOM_HEADERS} names"),
        ));
    }
    let mut lowered = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            check_header_name(name)
                .map(|()| name.to_ascii_lowercase())
                .map_err(|reason| FieldError::new(format!("secret_headers[{i}]"), reason))
        })
        .collect::<Result<Vec<_>, _>>()?;
    lowered.sort_unstable();
    lowered.dedup();
    Ok(lowered)
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

/// An endpoint as shown: never its secret.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    id: String,
    tenant_id: String,
    url: String,
    description: String,
    event_types: Vec<String>,
    /// Credential-like values, and those of `secret_headers`, shown as
    /// `********`.
    headers: BTreeMap<String, String>,
    /// Lowercased.
    secret_headers: Vec<String>,
    timeout_seconds: i32,
    max_in_flight: i32,
    retry_schedule: Vec<u32>,
    retry_client_errors: bool,
    http_method: String,
    /// Most attempts a second; `null`: no limit.
    rate_limit: Option<i32>,
    /// One delivery at a time, in event order.
    ordered: bool,
    metadata: BTreeMap<String, String>,
    signature_scheme: String,
    signature_header: String,
    signature_sha256_prefix: bool,
    /// `active` or `disabled`.
    status: String,
    disabled_at: Option<String>,
    /// `manual`, `consecutive_failures` or `gone`.
    disabled_reason: Option<String>,
    created_at: String,
    updated_at: String,
    /// Shown at top level like every writable field, and grouped in
    /// `overrides`.
    #[serde(flatten)]
    limits: LimitOverrides,
    overrides: LimitOverrides,
    /// Live figures of the endpoint's actor (`GET` of one endpoint only).
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<EndpointStats>,
}

/// Each health limit: the endpoint's override, `null` for the global value.
#[derive(Clone, Serialize, ToSchema)]
struct LimitOverrides {
    breaker_failures: Option<u32>,
    breaker_cooldown_seconds: Option<u64>,
    breaker_max_cooldown_seconds: Option<u64>,
    alert_thresholds: Option<Vec<u32>>,
    disable_after_failures: Option<u32>,
    disable_after_seconds: Option<u64>,
}

impl From<HealthOverrides> for LimitOverrides {
    fn from(overrides: HealthOverrides) -> Self {
        LimitOverrides {
            breaker_failures: overrides.breaker_failures,
            breaker_cooldown_seconds: overrides.breaker_cooldown_seconds,
            breaker_max_cooldown_seconds: overrides.breaker_max_cooldown_seconds,
            alert_thresholds: overrides.alert_thresholds,
            disable_after_failures: overrides.disable_after_failures,
            disable_after_seconds: overrides.disable_after_seconds,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct EndpointStats {
    /// Deliveries in the actor's memory.
    queued: usize,
    /// More pending deliveries wait on disk.
    backlog_on_disk: bool,
    /// The backlog move under way (`hold` or `release`), if any.
    backlog_move: Option<&'static str>,
    in_flight: usize,
    /// Of those in flight, attempts waiting for a slot of the service's
    /// attempt budget: not yet sent, and not failures.
    waiting_for_slot: usize,
    /// Reloads of its state: after a change, a failed write or a stop.
    restarts: u32,
    /// The last storage failure it met, or why it cannot sign.
    last_error: Option<String>,
}

/// A new endpoint: the one view, with `GET …/secret`, that shows the secret.
#[derive(Serialize, ToSchema)]
struct EndpointCreated {
    #[serde(flatten)]
    endpoint: EndpointOut,
    secret: String,
}

pub fn view(row: &EndpointRow, live: Option<&EndpointSnapshot>) -> EndpointOut {
    let limits = LimitOverrides::from(row.overrides());
    EndpointOut {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        url: row.url.clone(),
        description: row.description.clone(),
        event_types: row.event_type_list(),
        headers: redacted_headers(&row.header_map(), &row.secret_header_list()),
        secret_headers: row.secret_header_list(),
        timeout_seconds: row.timeout_seconds,
        max_in_flight: row.max_in_flight,
        retry_schedule: row.retry_schedule_list(),
        retry_client_errors: row.retry_client_errors,
        http_method: row.http_method.clone(),
        rate_limit: row.rate_limit,
        ordered: row.ordered,
        metadata: row.metadata_map(),
        signature_scheme: row.signature_scheme.clone(),
        signature_header: row.signature_header.clone(),
        signature_sha256_prefix: row.signature_sha256_prefix,
        status: row.status.clone(),
        disabled_at: row.disabled_at.map(rfc3339),
        disabled_reason: row.disabled_reason.clone(),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        overrides: limits.clone(),
        limits,
        stats: live.map(|live| EndpointStats {
            queued: live.machine.queued,
            backlog_on_disk: live.machine.backlog_on_disk,
            backlog_move: live.machine.moving.map(|kind| kind.as_str()),
            in_flight: live.machine.in_flight,
            waiting_for_slot: live.waiting_for_slot,
            restarts: live.restarts,
            last_error: live.last_error.clone(),
        }),
    }
}

/// Refuses a URL the target policy forbids (an IP-literal host in a
/// non-public range, `http` when only `https` is allowed) before anything
/// is stored; host names are vetted when they are resolved for delivery.
fn check_target(url: &str, targets: &TargetPolicy) -> Result<(), FieldError> {
    targets
        .check_url(&parse_endpoint_url(url)?)
        .map_err(|reason| FieldError::new("url", reason))
}

#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/endpoints",
    tag = "endpoints",
    params(TenantPath),
    request_body = NewEndpoint,
    responses((status = 201, description = "The endpoint, with its secret", body = EndpointCreated))
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let caps = (!path.by_admin()).then_some(state.tenant_caps);
    let TenantPath { tenant } = path.into_inner();
    let fields: EndpointFields = parse_json(&body)?;
    let Some(url) = &fields.url else {
        return Err(FieldError::new("url", "is required").into());
    };
    check_target(url, &state.targets)?;
    let mut row = EndpointRow::with_defaults(&ids::time_ordered("ep"), &tenant, now_ms());
    let max_only = fields.changes_max_cooldown_only();
    fields.apply_to(&mut row)?;
    if let Some(caps) = &caps {
        caps.check_timeout(None, row.timeout_seconds.unsigned_abs())?;
    }
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
    // Through the writer, which runs one job at a time: no other create
    // or update can come between the count (or sum) and the insert.
    state
        .writer
        .call(move |db| {
            if endpoints::count_in_tenant(db, &stored.tenant_id)? >= MAX_ENDPOINTS_PER_TENANT {
                return Ok(Err(ApiError::LimitReached {
                    collection: "endpoints",
                    detail: format!(
                        "a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} endpoints; \
                         delete one first"
                    ),
                }));
            }
            if let Some(caps) = &caps {
                let others = endpoints::in_flight_total(db, &stored.tenant_id, &stored.id)?;
                if let Err(refused) =
                    caps.check_in_flight(None, stored.max_in_flight.unsigned_abs(), others)
                {
                    return Ok(Err(refused.into()));
                }
            }
            endpoints::insert(db, &stored)?;
            Ok(Ok(()))
        })
        .await??;
    state.router.do_send(EndpointSaved(config));
    // The secret is shown here and by GET …/secret, never in a view.
    Ok(HttpResponse::Created().json(EndpointCreated {
        endpoint: view(&row, None),
        secret: row.secret,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints",
    tag = "endpoints",
    params(TenantPath, PageParams),
    responses((status = 200, description = "A page of endpoints", body = Page<EndpointOut>))
)]
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: Authorized<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let TenantPath { tenant } = path.into_inner();
    let paging = parse_query::<PageParams>(&request)?.paging()?;
    list_page(
        &state.store,
        paging,
        move |db, after, limit| endpoints::list(db, &tenant, after, limit),
        |r| &r.id,
        |r| view(&r, None),
    )
    .await
}

pub async fn find(state: &AppState, tenant: &str, id: &str) -> Result<EndpointRow, ApiError> {
    let (tenant, id) = (tenant.to_owned(), id.to_owned());
    let found = state.store.run(move |db| endpoints::find(db, &tenant, &id));
    found_or_404("endpoint", found).await
}

#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 200, description = "The endpoint and its actor's live figures", body = EndpointOut))
)]
pub async fn get(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let EndpointPath {
        tenant,
        endpoint: id,
    } = path.into_inner();
    let row = find(&state, &tenant, &id).await?;
    let live = state
        .router
        .send(SnapshotOf(id))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Ok().json(view(&row, live.as_ref())))
}

#[utoipa::path(
    patch,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    request_body = EndpointFields,
    responses(
        (status = 200, description = "The changed endpoint", body = EndpointOut),
        (status = 409, description = "The stored secret cannot be read and no new one was given", body = super::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    body: web::Bytes,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let caps = (!path.by_admin()).then_some(state.tenant_caps);
    let EndpointPath {
        tenant,
        endpoint: id,
    } = path.into_inner();
    let fields: EndpointFields = parse_json(&body)?;
    let stored = find(&state, &tenant, &id).await?;
    let before_in_flight = stored.max_in_flight.unsigned_abs();
    let before_timeout = stored.timeout_seconds.unsigned_abs();
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
    if let Some(caps) = &caps {
        caps.check_timeout(Some(before_timeout), row.timeout_seconds.unsigned_abs())?;
    }
    let config = checked_config(&row, &state.health_defaults, max_only, &state.secrets)?;
    let stored = row.sealed(&state.secrets);
    // Through the writer, as a create: no other change to the tenant's
    // endpoints comes between the sum and the update.
    state
        .writer
        .call(move |db| {
            if let Some(caps) = &caps {
                let others = endpoints::in_flight_total(db, &stored.tenant_id, &stored.id)?;
                let after = stored.max_in_flight.unsigned_abs();
                if let Err(refused) = caps.check_in_flight(Some(before_in_flight), after, others) {
                    return Ok(Err(refused));
                }
            }
            endpoints::update(db, &stored)?;
            Ok(Ok(()))
        })
        .await??;
    state.router.do_send(EndpointSaved(config));
    Ok(HttpResponse::Ok().json(view(&row, None)))
}

#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant}/endpoints/{endpoint}",
    tag = "endpoints",
    params(EndpointPath),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    state: web::Data<AppState>,
    path: Authorized<EndpointPath>,
) -> Result<HttpResponse, ApiError> {
    let EndpointPath {
        tenant,
        endpoint: id,
    } = path.into_inner();
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
