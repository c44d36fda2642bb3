//! Applying a request's [`EndpointFields`] to an endpoint row: every given
//! field is checked, naming it when refused, then written; the row's
//! health limits and signing are checked as a whole once every field is in.

use super::fields::{
    EndpointFields, MAX_CUSTOM_HEADERS, MAX_DESCRIPTION, MAX_EVENT_TYPES, MAX_HEADER_VALUE,
};
use crate::api::problem::ApiError;
use crate::core::delivery::rate_limit::MAX_RATE_LIMIT;
use crate::core::delivery::retry::check_schedule;
use crate::core::endpoint::{EndpointConfig, HttpMethod, MAX_MAX_IN_FLIGHT, MAX_TIMEOUT_SECONDS};
use crate::core::health::limits::{
    HealthLimits, MAX_ALERT_THRESHOLDS, MAX_FAILURE_COUNT, MAX_LIMIT_SECONDS,
};
use crate::core::input::domain::{
    check_header_name, check_line, check_metadata, check_text, is_secret_header,
    parse_endpoint_url, unredacted_headers, FieldError,
};
use crate::core::input::matching::EventTypePattern;
use crate::core::secrets::secret_box::{check_storable, SecretBox};
use crate::core::secrets::signature_scheme::SchemeName;
use crate::store::models::EndpointRow;
use actix_web::http::header::HeaderValue;

/// Writes the health-limit override `field` of the request into the row's
/// column of the same name once `check` takes it (a refusal names the
/// field); `null` returns to the global value, and an absent one stays.
macro_rules! set_override {
    ($fields:ident, $row:ident, $field:ident, $check:expr) => {
        if let Some(value) = $fields.$field {
            $row.$field = value
                .map(|value| $check(stringify!($field), value))
                .transpose()?;
        }
    };
}

impl EndpointFields {
    /// Validates every given field and writes it into `row`.
    pub(super) fn apply_to(self, row: &mut EndpointRow) -> Result<(), FieldError> {
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

    pub(super) fn changes_max_cooldown_only(&self) -> bool {
        matches!(self.breaker_max_cooldown_seconds, Some(Some(_)))
            && self.breaker_cooldown_seconds.is_none()
    }

    /// Writes the health-limit overrides; [`checked_config`] then checks
    /// them together with the global settings.
    fn apply_limits_to(&self, row: &mut EndpointRow) -> Result<(), FieldError> {
        set_override!(self, row, breaker_failures, failure_count);
        set_override!(self, row, breaker_cooldown_seconds, seconds_limit);
        set_override!(self, row, breaker_max_cooldown_seconds, seconds_limit);
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
        set_override!(self, row, disable_after_failures, failure_count);
        set_override!(self, row, disable_after_seconds, seconds_limit);
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
pub(super) fn checked_config(
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
