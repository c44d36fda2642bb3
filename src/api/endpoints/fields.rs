//! An endpoint's writable fields as a request gives them, and their
//! schemas in the OpenAPI document. The schemas of the bounded fields are
//! built from the limits that the checks of [`super::apply`] enforce, so
//! the document shows what the code does.

use crate::api::problem::present;
use crate::core::delivery::rate_limit::MAX_RATE_LIMIT;
use crate::core::delivery::retry::{MAX_DELAY, MAX_SCHEDULE_LEN, MIN_DELAY_SECONDS};
use crate::core::endpoint::{
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT_SECONDS, MAX_MAX_IN_FLIGHT, MAX_TIMEOUT_SECONDS,
};
use crate::core::health::limits::{MAX_ALERT_THRESHOLDS, MAX_FAILURE_COUNT, MAX_LIMIT_SECONDS};
use crate::core::input::domain::{
    MAX_EVENT_TYPE, MAX_HEADER_NAME, MAX_METADATA_ENTRIES, MAX_METADATA_KEY, MAX_METADATA_VALUE,
    MAX_URL,
};
use crate::core::secrets::signature_scheme::SchemeName;
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{Object, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub(super) const MAX_DESCRIPTION: usize = 1024;
pub(super) const MAX_EVENT_TYPES: usize = 100;
pub(super) const MAX_CUSTOM_HEADERS: usize = 50;
pub(super) const MAX_HEADER_VALUE: usize = 4096;

/// An endpoint's writable fields. On create `url` is required; on update
/// every field is optional, and an absent one keeps its value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EndpointFields {
    /// An absolute `http` or `https` URL without credentials.
    #[schema(schema_with = url_schema)]
    pub(super) url: Option<String>,
    /// Tabs and line breaks allowed, no other control characters.
    #[schema(schema_with = description_schema)]
    pub(super) description: Option<String>,
    /// Patterns: `*`, `invoice.*` or an exact type; empty = every event.
    #[schema(schema_with = event_types_schema)]
    pub(super) event_types: Option<Vec<String>>,
    /// Sent with every attempt; `********` keeps a stored credential value.
    #[schema(schema_with = headers_schema)]
    pub(super) headers: Option<BTreeMap<String, String>>,
    /// Names of headers whose values are secret like credential-like
    /// names: shown as `********`, sealed at rest. Any case; a name need not
    /// be one of `headers` yet.
    #[schema(schema_with = secret_headers_schema)]
    pub(super) secret_headers: Option<Vec<String>>,
    /// Generated (`whsec_…`) when not given. `standard`: `whsec_<base64>`
    /// of 24 to 64 bytes; the other schemes: 1 to 255 printable ASCII
    /// characters.
    #[schema(min_length = 1)]
    pub(super) secret: Option<String>,
    /// A tenant key may set at most the operator's cap (60 by default).
    #[schema(schema_with = timeout_schema)]
    pub(super) timeout_seconds: Option<u32>,
    /// A tenant key may set it only while the sum over the tenant's
    /// endpoints stays within the operator's cap (16,000 by default).
    #[schema(schema_with = max_in_flight_schema)]
    pub(super) max_in_flight: Option<u32>,
    /// Delays between attempts, in seconds.
    #[schema(schema_with = retry_schedule_schema)]
    pub(super) retry_schedule: Option<Vec<u32>>,
    #[schema(schema_with = scheme_name_schema)]
    pub(super) signature_scheme: Option<String>,
    /// `hex` only.
    #[schema(schema_with = signature_header_schema)]
    pub(super) signature_header: Option<String>,
    /// `hex` only.
    pub(super) signature_sha256_prefix: Option<bool>,
    /// `POST`, `PUT` or `PATCH`, in any case.
    #[schema(pattern = "^([Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh])$")]
    pub(super) http_method: Option<String>,
    /// `false`: a 4xx other than 408 and 429 fails the delivery at once.
    pub(super) retry_client_errors: Option<bool>,
    /// Your own labels, stored and shown, never sent.
    #[schema(schema_with = metadata_schema)]
    pub(super) metadata: Option<BTreeMap<String, String>>,
    /// Most attempts a second. Absent keeps it, `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = rate_limit_schema)]
    pub(super) rate_limit: Option<Option<u32>>,
    /// `true`: one delivery at a time, in event order; one waiting for its
    /// retry holds back every later one until it succeeds or fails for good.
    pub(super) ordered: Option<bool>,
    // Health-limit overrides: absent keeps the current value, `null` goes
    // back to the global setting.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = failure_count_schema)]
    pub(super) breaker_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    pub(super) breaker_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    pub(super) breaker_max_cooldown_seconds: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = alert_thresholds_schema)]
    pub(super) alert_thresholds: Option<Option<Vec<u32>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = failure_count_schema)]
    pub(super) disable_after_failures: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = limit_seconds_schema)]
    pub(super) disable_after_seconds: Option<Option<u64>>,
}

/// The body of a create: [`EndpointFields`] with `url` required (checked
/// by `create`).
pub(super) struct NewEndpoint;

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

fn nullable_integer(minimum: u64, maximum: u64) -> ObjectBuilder {
    integer(minimum, maximum).schema_type(or_null(Type::Integer))
}

/// An array of at most `max_items` `items`, or `null`.
fn nullable_list(items: ObjectBuilder, max_items: usize) -> Array {
    ArrayBuilder::new()
        .schema_type(or_null(Type::Array))
        .items(items)
        .max_items(Some(max_items))
        .build()
}

/// An object of at most `max_entries` `names` to `values`, or `null`.
fn nullable_map(names: ObjectBuilder, values: ObjectBuilder, max_entries: usize) -> Object {
    ObjectBuilder::new()
        .schema_type(or_null(Type::Object))
        .additional_properties(Some(values))
        .property_names(Some(names))
        .max_properties(Some(max_entries))
        .build()
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
    nullable_list(text(MAX_EVENT_TYPE).min_length(Some(1)), MAX_EVENT_TYPES)
}

fn headers_schema() -> Object {
    nullable_map(
        text(MAX_HEADER_NAME).min_length(Some(1)),
        text(MAX_HEADER_VALUE).pattern(Some(HEADER_VALUE)),
        MAX_CUSTOM_HEADERS,
    )
}

fn secret_headers_schema() -> Array {
    nullable_list(
        text(MAX_HEADER_NAME).min_length(Some(1)),
        MAX_CUSTOM_HEADERS,
    )
}

fn metadata_schema() -> Object {
    nullable_map(
        text(MAX_METADATA_KEY)
            .min_length(Some(1))
            .pattern(Some("^[A-Za-z0-9._:-]+$")),
        text(MAX_METADATA_VALUE).pattern(Some(ONE_LINE)),
        MAX_METADATA_ENTRIES,
    )
}

fn timeout_schema() -> Object {
    nullable_integer(1, MAX_TIMEOUT_SECONDS.into())
        .default(Some(DEFAULT_TIMEOUT_SECONDS.into()))
        .build()
}

fn max_in_flight_schema() -> Object {
    nullable_integer(1, MAX_MAX_IN_FLIGHT.into())
        .default(Some(DEFAULT_MAX_IN_FLIGHT.into()))
        .build()
}

fn retry_schedule_schema() -> Array {
    nullable_list(
        integer(MIN_DELAY_SECONDS.into(), MAX_DELAY.as_secs()),
        MAX_SCHEDULE_LEN,
    )
}

fn rate_limit_schema() -> Object {
    nullable_integer(1, MAX_RATE_LIMIT.into()).build()
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
    nullable_integer(0, MAX_FAILURE_COUNT.into()).build()
}

fn limit_seconds_schema() -> Object {
    nullable_integer(0, MAX_LIMIT_SECONDS).build()
}

fn alert_thresholds_schema() -> Array {
    nullable_list(integer(0, MAX_FAILURE_COUNT.into()), MAX_ALERT_THRESHOLDS)
}
