//! Input parsed once into values that can only be valid. A handler never
//! carries an unchecked string deeper than this.

use url::Url;

/// Why a value was refused, and which field carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

fn check_chars(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    if value.is_empty() || value.len() > max {
        return Err(format!("must be 1 to {max} characters long"));
    }
    if !value.chars().all(allowed) {
        return Err("contains characters outside the allowed set".to_owned());
    }
    Ok(())
}

/// `[A-Za-z0-9._-]{1,64}`: a publisher can reuse its own customer ids.
pub fn parse_tenant_id(value: &str) -> Result<String, FieldError> {
    check_chars(value, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    })
    .map(|()| value.to_owned())
    .map_err(|reason| FieldError::new("id", format!("{reason} [A-Za-z0-9._-]")))
}

/// `[A-Za-z0-9_-]{1,64}`: it travels as the `webhook-id` header.
pub fn parse_event_id(value: &str) -> Result<String, FieldError> {
    check_chars(value, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
    })
    .map(|()| value.to_owned())
    .map_err(|reason| FieldError::new("id", format!("{reason} [A-Za-z0-9_-]")))
}

/// Dot-separated segments of `[A-Za-z0-9_-]`, e.g. `invoice.payment.failed`.
pub fn check_event_type(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 255 {
        return Err("must be 1 to 255 characters long".to_owned());
    }
    let segments_ok = value.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    });
    if segments_ok {
        Ok(())
    } else {
        Err("must be dot-separated non-empty segments of [A-Za-z0-9_-]".to_owned())
    }
}

pub fn parse_event_type(value: &str) -> Result<String, FieldError> {
    check_event_type(value)
        .map(|()| value.to_owned())
        .map_err(|reason| FieldError::new("type", reason))
}

/// An absolute `http` or `https` URL with a host and no credentials.
pub fn parse_endpoint_url(value: &str) -> Result<Url, FieldError> {
    let url = Url::parse(value)
        .map_err(|e| FieldError::new("url", format!("is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new("url", "must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new("url", "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            "url",
            "must not carry credentials; use custom headers instead",
        ));
    }
    Ok(url)
}

/// Custom headers may not override the ones hookrelay owns.
pub fn check_custom_header(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let reserved = lower.starts_with("webhook-")
        || matches!(
            lower.as_str(),
            "content-type" | "content-length" | "host" | "user-agent" | "transfer-encoding"
        );
    if reserved {
        Err(format!("header {name} is set by hookrelay"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_contract() {
        assert!(parse_tenant_id("acme.corp_1-2").is_ok());
        assert!(parse_tenant_id("").is_err());
        assert!(parse_tenant_id("a b").is_err());
        assert!(parse_tenant_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn event_ids_exclude_dots() {
        assert!(parse_event_id("evt_123-abc").is_ok());
        assert!(parse_event_id("evt.1").is_err());
    }

    #[test]
    fn event_types_are_dotted_segments() {
        assert!(parse_event_type("invoice.payment.failed").is_ok());
        assert!(parse_event_type("invoice..paid").is_err());
        assert!(parse_event_type("invoice.*").is_err());
        assert!(parse_event_type("").is_err());
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_endpoint_url("https://example.com/hook").is_ok());
        assert!(parse_endpoint_url("http://127.0.0.1:9000/").is_ok());
        assert_eq!(
            parse_endpoint_url("ftp://example.com").unwrap_err().field,
            "url"
        );
        assert!(parse_endpoint_url("not a url").is_err());
        assert!(parse_endpoint_url("https://user:pw@example.com").is_err());
    }

    #[test]
    fn reserved_headers_are_refused() {
        assert!(check_custom_header("X-Api-Key").is_ok());
        assert!(check_custom_header("Webhook-Signature").is_err());
        assert!(check_custom_header("content-type").is_err());
    }
}
