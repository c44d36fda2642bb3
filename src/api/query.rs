//! Query strings: parsed so that a bad parameter is a 422 naming it, and
//! the filters several lists share (a time range, an event type, a status
//! class).

use super::problem::ApiError;
use crate::core::delivery::lifecycle::StatusClass;
use crate::core::input::domain::{check_event_type, FieldError};
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

/// `status_class`: `2xx`, `3xx`, `4xx`, `5xx` or `none`.
pub fn status_class_param(value: Option<&str>) -> Result<Option<StatusClass>, FieldError> {
    value
        .map(|value| {
            StatusClass::parse(value).ok_or_else(|| {
                FieldError::new(
                    "status_class",
                    format!("must be one of {}", StatusClass::NAMES.join(", ")),
                )
            })
        })
        .transpose()
}
