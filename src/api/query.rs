//! Query strings: parsed so that a bad parameter is a 422 naming it, and
//! the filters several lists share (a time range, an event type, an id, one
//! of a fixed set of names).

use super::problem::ApiError;
use crate::core::delivery::lifecycle::{DeliveryState, StatusClass};
use crate::core::health::failure_policy::AlertKind;
use crate::core::input::domain::{check_event_type, parse_query_id, FieldError};
use actix_web::HttpRequest;
use serde::de::DeserializeOwned;

/// Parses the query string: an unknown parameter, a repeated one or a bad
/// value is a 422 naming it (actix's `web::Query` answers 400 naming none).
pub fn parse_query<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(request.query_string().as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|error| {
        let field = error.path().to_string();
        let reason = error.inner().to_string();
        // serde names an unknown or repeated parameter only in its message.
        let named = ["unknown field `", "duplicate field `"]
            .iter()
            .find_map(|prefix| reason.strip_prefix(prefix));
        let field = match named {
            Some(rest) => rest.split('`').next().unwrap_or_default().to_owned(),
            None => field,
        };
        FieldError::new(field, reason).into()
    })
}

/// An RFC 3339 timestamp of the query, in milliseconds.
pub fn time_param(field: &str, value: Option<&str>) -> Result<Option<i64>, FieldError> {
    value
        .map(|value| {
            chrono::DateTime::parse_from_rfc3339(value)
                .map(|at| at.timestamp_millis())
                .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp"))
        })
        .transpose()
}

/// `since` (inclusive) and `until` (exclusive), `until` after `since`.
pub fn time_range(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), FieldError> {
    let since_ms = time_param("since", since)?;
    let until_ms = time_param("until", until)?;
    if let (Some(since), Some(until)) = (since_ms, until_ms) {
        if until <= since {
            return Err(FieldError::new("until", "must be later than since"));
        }
    }
    Ok((since_ms, until_ms))
}

/// `event_type`, exactly as published.
pub fn event_type_param(value: Option<&str>) -> Result<Option<String>, FieldError> {
    value
        .map(|value| {
            check_event_type(value)
                .map(|()| value.to_owned())
                .map_err(|reason| FieldError::new("event_type", reason))
        })
        .transpose()
}

/// An id of the query (`endpoint_id`, `cursor`).
pub fn id_param(field: &str, value: Option<&str>) -> Result<Option<String>, FieldError> {
    value.map(|value| parse_query_id(field, value)).transpose()
}

/// A value a filter takes out of a fixed set, by name: what the query
/// parses and what the OpenAPI document lists (`api::schema`).
pub trait Choice: Sized {
    /// Every name, in the order the document and a refusal list them.
    fn names() -> Vec<&'static str>;
    fn parse(name: &str) -> Option<Self>;
}

impl Choice for DeliveryState {
    fn names() -> Vec<&'static str> {
        DeliveryState::ALL.map(DeliveryState::as_str).to_vec()
    }
    fn parse(name: &str) -> Option<Self> {
        DeliveryState::parse(name)
    }
}

impl Choice for AlertKind {
    fn names() -> Vec<&'static str> {
        AlertKind::ALL.map(AlertKind::as_str).to_vec()
    }
    fn parse(name: &str) -> Option<Self> {
        AlertKind::parse(name)
    }
}

impl Choice for StatusClass {
    fn names() -> Vec<&'static str> {
        StatusClass::NAMES.to_vec()
    }
    fn parse(name: &str) -> Option<Self> {
        StatusClass::parse(name)
    }
}

/// A filter that takes one of the names of `C` (a delivery `state`, an
/// alert `kind`, a `status_class`); any other value is refused, listing
/// them.
pub fn choice_param<C: Choice>(field: &str, value: Option<&str>) -> Result<Option<C>, FieldError> {
    value
        .map(|value| {
            C::parse(value).ok_or_else(|| {
                FieldError::new(field, format!("must be one of {}", C::names().join(", ")))
            })
        })
        .transpose()
}
