//! Input parsed once into values that can only be valid. A handler never
//! carries an unchecked string deeper than this.

use std::collections::BTreeMap;
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

/// Longest id that can name a stored resource.
pub const MAX_ID: usize = 255;

/// Whether `value` can be the id of something we store (a tenant, an
/// endpoint, an event, a delivery, an alert): 1 to [`MAX_ID`] characters of
/// `[A-Za-z0-9._:-]`, the union of what [`parse_tenant_id`],
/// [`parse_event_id`], generated ids and the system tenant
/// (`hookrelay:operator`) use. Anything else names nothing, so it never
/// needs to reach a query (where a NUL would be an error on PostgreSQL).
pub fn is_id(value: &str) -> bool {
    check_chars(value, MAX_ID, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
    })
    .is_ok()
}

/// An id given as a query parameter (a filter or a cursor): one that cannot
/// name anything is refused, naming the parameter.
pub fn parse_query_id(field: &str, value: &str) -> Result<String, FieldError> {
    if is_id(value) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!("must be an id: 1 to {MAX_ID} characters of [A-Za-z0-9._:-]"),
        ))
    }
}

/// One-line text (a tenant's name): no control characters at all.
pub fn check_line(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Free text (a description): tab, line feed and carriage return are fine,
/// other control characters are refused.
pub fn check_text(field: &str, value: &str) -> Result<(), FieldError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than tab and line breaks",
        ));
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

/// Longest event type.
pub const MAX_EVENT_TYPE: usize = 255;

/// Dot-separated segments of `[A-Za-z0-9_-]`, e.g. `invoice.payment.failed`.
pub fn check_event_type(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_EVENT_TYPE {
        return Err(format!("must be 1 to {MAX_EVENT_TYPE} characters long"));
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

/// Longest endpoint URL, in bytes: what common proxies and servers accept
/// in a request line.
pub const MAX_URL: usize = 2048;

/// An absolute `http` or `https` URL with a host and no credentials.
/// Control characters are refused before parsing: the URL parser would
/// silently drop some (tabs, line breaks, leading ones) and escape others.
pub fn parse_endpoint_url(value: &str) -> Result<Url, FieldError> {
    if value.len() > MAX_URL {
        return Err(FieldError::new(
            "url",
            format!("may be at most {MAX_URL} bytes long"),
        ));
    }
    check_line("url", value)?;
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

/// Longest header name an endpoint may configure (custom or signature).
pub const MAX_HEADER_NAME: usize = 128;

/// Headers an endpoint may not configure, lower case: those hookrelay sets
/// on every request, and those that describe one connection rather than the
/// message (a proxy drops or acts on them, and HTTP clients manage them).
/// Every `webhook-*` header is hookrelay's too (see [`check_header_name`]).
const RESERVED_HEADERS: [&str; 14] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// A header name an endpoint may configure: an HTTP token of 1 to
/// [`MAX_HEADER_NAME`] characters that is not reserved. The one rule for
/// custom headers and the signature header.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.chars().all(is_tchar) {
        return Err(format!(
            "must be an HTTP header name of 1 to {MAX_HEADER_NAME} token characters"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("webhook-") || RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "header {name} is reserved: hookrelay or the HTTP connection sets it"
        ));
    }
    Ok(())
}

/// What an endpoint view shows instead of a sensitive header's value. A
/// `PATCH` that sends it back keeps the stored value, so a view can be
/// edited and returned without knowing the secret (GitHub's webhook config
/// does the same for its secret).
pub const REDACTED: &str = "********";

/// Whether a custom header carries a credential whose value views must not
/// show: `authorization`, `cookie`, and any name that speaks of a key, a
/// token, a secret, a password or a signature (`x-api-key`, `x-auth-token`).
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "authorization"
        || lower == "cookie"
        || [
            "auth",
            "key",
            "token",
            "secret",
            "password",
            "signature",
            "session",
        ]
        .iter()
        .any(|word| lower.contains(word))
}

/// A credential-like name, or one of `marked` (lowercased names the
/// endpoint marks secret).
pub fn is_secret_header(name: &str, marked: &[String]) -> bool {
    is_sensitive_header(name)
        || marked
            .iter()
            .any(|secret| secret.eq_ignore_ascii_case(name))
}

/// Custom headers as a view shows them: secret values redacted.
pub fn redacted_headers(
    headers: &BTreeMap<String, String>,
    marked: &[String],
) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_header(name, marked) {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            (name.clone(), shown)
        })
        .collect()
}

/// The headers a `PATCH` asked for: a sensitive header sent back as
/// [`REDACTED`] keeps its stored value (names compare case-insensitively,
/// as HTTP does); a new one may not be the placeholder itself.
pub fn unredacted_headers(
    requested: BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
    marked: &[String],
) -> Result<BTreeMap<String, String>, FieldError> {
    requested
        .into_iter()
        .map(|(name, value)| {
            if value != REDACTED || !is_secret_header(&name, marked) {
                return Ok((name, value));
            }
            stored
                .iter()
                .find(|(stored_name, _)| stored_name.eq_ignore_ascii_case(&name))
                .map(|(_, kept)| (name.clone(), kept.clone()))
                .ok_or_else(|| {
                    FieldError::new(
                        format!("headers.{name}"),
                        "is the redaction placeholder, but no value is stored to keep",
                    )
                })
        })
        .collect()
}

pub const MAX_METADATA_ENTRIES: usize = 50;
pub const MAX_METADATA_KEY: usize = 64;
pub const MAX_METADATA_VALUE: usize = 512;

/// An endpoint's `metadata`: the user's own labels, bounded like every
/// stored string; keys follow the id alphabet so they can be filtered on.
pub fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(FieldError::new(
            "metadata",
            format!("may hold at most {MAX_METADATA_ENTRIES} entries"),
        ));
    }
    for (key, value) in metadata {
        let field = format!("metadata.{key}");
        let is_key_char = |c: char| c.is_ascii_alphanumeric() || "._:-".contains(c);
        if key.is_empty() || key.len() > MAX_METADATA_KEY || !key.chars().all(is_key_char) {
            return Err(FieldError::new(
                "metadata",
                format!("keys must be 1 to {MAX_METADATA_KEY} characters of [A-Za-z0-9._:-]"),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE {
            return Err(FieldError::new(
                field,
                format!("may hold at most {MAX_METADATA_VALUE} characters"),
            ));
        }
        check_line(&field, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_headers_are_redacted_and_kept_on_patch() {
        let stored: BTreeMap<String, String> = [
            ("Authorization", "Bearer s3cret"),
            ("X-Api-Key", "k"),
            ("X-Team", "billing"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        let shown = redacted_headers(&stored, &[]);
        assert_eq!(shown["Authorization"], REDACTED);
        assert_eq!(shown["X-Api-Key"], REDACTED);
        assert_eq!(shown["X-Team"], "billing");
        let mut sent_back = shown.clone();
        sent_back.insert("X-Team".to_owned(), "payments".to_owned());
        let kept = unredacted_headers(sent_back, &stored, &[]).unwrap();
        assert_eq!(kept["Authorization"], "Bearer s3cret");
        assert_eq!(kept["X-Api-Key"], "k");
        assert_eq!(kept["X-Team"], "payments");
        let new_placeholder = [("X-Auth-Token".to_owned(), REDACTED.to_owned())].into();
        assert_eq!(
            unredacted_headers(new_placeholder, &stored, &[])
                .unwrap_err()
                .field,
            "headers.X-Auth-Token"
        );
        assert!(!is_sensitive_header("X-Request-Source"));
    }

    #[test]
    fn a_header_the_endpoint_marks_secret_is_masked_and_kept_like_a_credential() {
        let marked = vec!["x-partner-ref".to_owned()];
        assert!(is_secret_header("X-Partner-Ref", &marked));
        assert!(is_secret_header("Authorization", &marked));
        assert!(!is_secret_header("X-Tenant-Tag", &marked));
        let stored = BTreeMap::from([
            ("X-Partner-Ref".to_owned(), "ref-1".to_owned()),
            ("X-Tenant-Tag".to_owned(), "blue".to_owned()),
        ]);
        let shown = redacted_headers(&stored, &marked);
        assert_eq!(shown["X-Partner-Ref"], REDACTED);
        assert_eq!(shown["X-Tenant-Tag"], "blue");
        let kept = unredacted_headers(shown, &stored, &marked).expect("kept");
        assert_eq!(kept, stored);
    }

    #[test]
    fn metadata_is_bounded() {
        let entry = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(check_metadata(&entry("team", "billing")).is_ok());
        assert_eq!(
            check_metadata(&entry("a b", "x")).unwrap_err().field,
            "metadata"
        );
        assert_eq!(
            check_metadata(&entry("team", &"x".repeat(513)))
                .unwrap_err()
                .field,
            "metadata.team"
        );
        assert_eq!(
            check_metadata(&entry("team", "a\nb")).unwrap_err().field,
            "metadata.team"
        );
        let many = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check_metadata(&many).unwrap_err().field, "metadata");
    }

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
    fn control_characters_in_urls_are_refused_not_escaped() {
        for url in [
            "http://127.0.0.1/a\0b",
            "http://127.0.0.1/a\tb",
            "\0http://127.0.0.1/",
            "http://127.0.0.1/\n",
        ] {
            assert_eq!(parse_endpoint_url(url).unwrap_err().field, "url", "{url:?}");
        }
    }

    #[test]
    fn ids_that_can_exist_pass_the_guard() {
        for id in [
            "acme.corp_1-2",
            "hookrelay:operator",
            "ep_operator_alerts",
            "dlv_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4",
        ] {
            assert!(is_id(id), "{id:?}");
        }
        for id in ["", "a\0b", "a b", "a/b", "é", &"x".repeat(MAX_ID + 1)] {
            assert!(!is_id(id), "{id:?}");
        }
        assert_eq!(parse_query_id("cursor", "a\0").unwrap_err().field, "cursor");
    }

    #[test]
    fn text_rules() {
        assert!(check_line("name", "Acme Inc. ✓").is_ok());
        assert!(check_line("name", "Acme\0").is_err());
        assert!(check_line("name", "Acme\nInc").is_err());
        assert!(check_text("description", "line 1\n\tline 2\r\n").is_ok());
        assert!(check_text("description", "nul\0").is_err());
        assert_eq!(
            check_text("description", "\u{1b}[0m").unwrap_err().field,
            "description"
        );
    }

    #[test]
    fn reserved_headers_are_refused() {
        assert!(check_header_name("X-Api-Key").is_ok());
        for name in [
            "Webhook-Signature",
            "webhook-anything",
            "content-type",
            "Content-Length",
            "Host",
            "connection",
            "Keep-Alive",
            "proxy-connection",
            "TE",
            "trailer",
            "transfer-encoding",
            "Upgrade",
        ] {
            assert!(check_header_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn header_names_are_bounded_tokens() {
        assert!(check_header_name("X-Trace_Id.1~").is_ok());
        for name in ["", "X Api", "X:Api", "é", &"x".repeat(MAX_HEADER_NAME + 1)] {
            assert!(check_header_name(name).is_err(), "{name:?}");
        }
        assert!(check_header_name(&"x".repeat(MAX_HEADER_NAME)).is_ok());
    }

    #[test]
    fn urls_are_bounded() {
        let base = "https://example.com/";
        let longest = format!("{base}{}", "a".repeat(MAX_URL - base.len()));
        assert!(parse_endpoint_url(&longest).is_ok());
        let too_long = format!("{longest}a");
        assert_eq!(parse_endpoint_url(&too_long).unwrap_err().field, "url");
    }
}
