//! Errors as `application/problem+json` (RFC 9457), request-body parsing
//! that names the offending field, and lookups that answer 404.

use crate::core::input::domain::FieldError;
use crate::store::tenants::SYSTEM_TENANT;
use crate::store::StoreError;
use actix::MailboxError;
use actix_web::http::header::RETRY_AFTER;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required: send Authorization: Bearer <key>")]
    Unauthorized,
    #[error("this API key may not use this route")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{}: {}", .0.field, .0.reason)]
    Invalid(FieldError),
    /// A well-formed request that would go past a fixed limit on the size
    /// of `collection`, the field the answer names (`endpoints`,
    /// `api_keys`, `event_types`).
    #[error("{detail}")]
    LimitReached {
        collection: &'static str,
        detail: String,
    },
    #[error("the tenant {SYSTEM_TENANT} is managed by hookrelay from HOOKRELAY_ALERT_URL and HOOKRELAY_ALERT_SECRET; it can be read, not changed, through the API")]
    ReservedTenant,
    /// Answers 503 when the database is unavailable, 500 otherwise.
    #[error("storage failure")]
    Store(#[from] StoreError),
    #[error("the service is shutting down")]
    Unavailable,
}

/// What a 503 asks clients to wait before retrying, in seconds: about the
/// time the writer takes to notice the database is back.
pub const RETRY_AFTER_SECONDS: u32 = 2;

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::Invalid(error)
    }
}

/// An actor's mailbox (the router's) is closed only while the service
/// shuts down.
impl From<MailboxError> for ApiError {
    fn from(_: MailboxError) -> Self {
        ApiError::Unavailable
    }
}

/// Every error answer (RFC 9457), as `application/problem+json`.
#[derive(Serialize, ToSchema)]
pub struct Problem<'a> {
    /// Always `about:blank`: the status and the title name the error.
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    detail: String,
    /// The input at fault: a body field (`url`, `headers.x-a`,
    /// `retry_schedule[2]`), a query parameter or a header.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden => "Forbidden",
            ApiError::NotFound(_) => "Not Found",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Malformed(_) => "Malformed request",
            ApiError::Invalid(_) => "Invalid field",
            ApiError::LimitReached { .. } => "Limit reached",
            ApiError::ReservedTenant => "Forbidden",
            ApiError::Store(error) if error.is_unavailable() => "Service Unavailable",
            ApiError::Store(StoreError::Busy(_) | StoreError::Fenced(_)) => "Service Unavailable",
            ApiError::Store(_) => "Internal Server Error",
            ApiError::Unavailable => "Service Unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) | ApiError::LimitReached { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::ReservedTenant => StatusCode::FORBIDDEN,
            ApiError::Store(error) if error.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::Busy(_) | StoreError::Fenced(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Store(error) if error.is_unavailable() => {
                // The writer and the pool log an outage where they meet it,
                // not once per refused request.
                log::debug!("request refused, the database is unavailable: {error}");
                // Not "it changed nothing": a commit cut off by a lost
                // connection may have gone through.
                format!("the database is unavailable; retry in {RETRY_AFTER_SECONDS} s")
            }
            ApiError::Store(StoreError::Busy(why)) => why.clone(),
            ApiError::Store(error @ StoreError::Fenced(_)) => {
                format!("{error}; retry in {RETRY_AFTER_SECONDS} s")
            }
            ApiError::Store(error) => {
                log::error!("request failed: {error}");
                "the request could not be completed; it changed nothing".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            ApiError::Invalid(error) => Some(error.field.as_str()),
            ApiError::LimitReached { collection, .. } => Some(*collection),
            _ => None,
        };
        let mut response = problem_response(status, self.title(), detail, field);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, RETRY_AFTER_SECONDS.into());
        }
        response
    }
}

pub fn problem_response(
    status: StatusCode,
    title: &'static str,
    detail: String,
    field: Option<&str>,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail,
            field,
        })
}

/// What `lookup` (a store read or a writer job) found, or a 404 naming
/// `what` (`"endpoint"`) when it found nothing.
pub async fn found_or_404<T>(
    what: &'static str,
    lookup: impl Future<Output = Result<Option<T>, StoreError>>,
) -> Result<T, ApiError> {
    lookup.await?.ok_or(ApiError::NotFound(what))
}

/// Parses a JSON body: bad syntax is a 400, a wrong shape a 422 naming the
/// field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let reason = error.inner().to_string();
        ApiError::Invalid(field_error(&path, &reason))
    })
}

/// Parses a body every field of which is optional: an empty body (or only
/// whitespace) means all defaults.
pub fn parse_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body)
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on a field of a
/// `PATCH`: tells a field given as `null` (`Some(None)`) from an absent one
/// (`None`, the default).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// serde reports a missing field at its parent; name the field itself.
fn field_error(path: &str, reason: &str) -> FieldError {
    let named = reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (named, path) {
        (Some(name), ".") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, path) => path.to_owned(),
    };
    FieldError::new(field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        url: String,
        tags: Option<Vec<String>>,
    }

    fn invalid_field(body: &str) -> String {
        match parse_json::<Input>(body.as_bytes()) {
            Err(ApiError::Invalid(error)) => error.field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn names_missing_unknown_and_mistyped_fields() {
        assert_eq!(invalid_field("{}"), "url");
        assert_eq!(invalid_field(r#"{"url": "x", "colour": 1}"#), "colour");
        assert_eq!(invalid_field(r#"{"url": 5}"#), "url");
        assert_eq!(
            invalid_field(r#"{"url": "x", "tags": ["a", 3]}"#),
            "tags[1]"
        );
    }

    #[test]
    fn an_unavailable_database_or_a_busy_endpoint_is_a_503_with_retry_after() {
        for error in [
            StoreError::Unavailable("connection closed".to_owned()),
            StoreError::WriterGone,
            StoreError::Busy("the endpoint is shutting down".to_owned()),
        ] {
            let response = ApiError::Store(error).error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
                Some(RETRY_AFTER_SECONDS.to_string().as_bytes())
            );
        }
        let response = ApiError::Store(StoreError::Corrupt("x".to_owned())).error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn bad_syntax_is_malformed() {
        assert!(matches!(
            parse_json::<Input>(b"{"),
            Err(ApiError::Malformed(_))
        ));
    }
}
