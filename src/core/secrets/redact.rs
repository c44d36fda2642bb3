//! What of a secret-bearing string may be written to a log: a database URL
//! without its password, an endpoint URL as its origin only (the path and
//! query of a Slack-style URL are its token).

use url::Url;

/// Stands where a secret was.
const HIDDEN: &str = "***";

/// `url` with its password replaced by `***`. A URL that does not parse
/// keeps only its scheme, since where its password lies cannot be told.
pub fn database_url(url: &str) -> String {
    match Url::parse(url) {
        // `user:pw@host` parses as a scheme and an opaque path.
        Ok(parsed) if parsed.cannot_be_a_base() && url.contains('@') => scheme_only(url),
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some(HIDDEN)).is_err() {
                return scheme_only(url);
            }
            parsed.to_string()
        }
        // A bare SQLite path (`hookrelay.db`, `sqlite:file.db`) holds no
        // credentials; anything with an authority might.
        Err(_) if !url.contains('@') => url.to_owned(),
        Err(_) => scheme_only(url),
    }
}

fn scheme_only(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}:{HIDDEN}"),
        None => HIDDEN.to_owned(),
    }
}

/// `text` with every occurrence of the database URL's password replaced
/// by `***`: a driver's message may quote the connection string.
pub fn database_password_in(text: &str, database_url: &str) -> String {
    let Some(password) = Url::parse(database_url)
        .ok()
        .and_then(|url| url.password().map(str::to_owned))
    else {
        return text.to_owned();
    };
    let decoded = percent_decoded(&password);
    let mut redacted = text.replace(&password, HIDDEN);
    if !decoded.is_empty() {
        redacted = redacted.replace(&decoded, HIDDEN);
    }
    redacted
}

fn percent_decoded(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", value.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, decoded)| decoded.into_owned())
        .unwrap_or_default()
}

/// An endpoint URL as it may be logged: scheme, host and port, nothing of
/// its path, query or credentials.
pub fn endpoint_origin(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}", parsed.scheme()),
            (None, _) => format!("{}:{HIDDEN}", parsed.scheme()),
        },
        Err(_) => HIDDEN.to_owned(),
    }
}

/// `text` (an attempt's error, which an HTTP client words with the URL it
/// sent to) with the endpoint's URL replaced by its origin.
pub fn endpoint_url_in(text: &str, url: &str) -> String {
    let origin = endpoint_origin(url);
    let mut redacted = text.replace(url, &origin);
    if let Ok(normalized) = Url::parse(url) {
        redacted = redacted.replace(normalized.as_str(), &origin);
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_loses_its_password_and_keeps_the_rest() {
        assert_eq!(
            database_url("postgres://hook:s3cr%40t@db.internal:5432/hookrelay?sslmode=require"),
            "postgres://hook:***@db.internal:5432/hookrelay?sslmode=require"
        );
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            database_url("sqlite://hookrelay.db"),
            "sqlite://hookrelay.db"
        );
        assert_eq!(database_url("hookrelay.db"), "hookrelay.db");
    }

    #[test]
    fn a_database_url_that_does_not_parse_keeps_only_its_scheme_when_it_may_hold_credentials() {
        assert_eq!(database_url("mysql://user:pw@[bad/db"), "mysql:***");
        assert_eq!(database_url("user:pw@host"), "user:***");
        assert!(!database_url("pw@host").contains("pw"));
    }

    #[test]
    fn a_driver_message_quoting_the_password_loses_it_encoded_or_not() {
        let url = "postgres://hook:p%25zz-secret@db/hookrelay";
        assert_eq!(
            database_password_in("invalid percent-encoded token: \"p%25zz-secret\"", url),
            "invalid percent-encoded token: \"***\""
        );
        assert_eq!(
            database_password_in("password p%zz-secret refused", url),
            "password *** refused"
        );
        assert_eq!(
            database_password_in("connection refused", "postgres://db/x"),
            "connection refused"
        );
    }

    #[test]
    fn an_endpoint_url_is_logged_as_scheme_host_and_port() {
        assert_eq!(
            endpoint_origin("https://hooks.slack.com/services/T000/B000/XXXX?token=abc"),
            "https://hooks.slack.com:443"
        );
        assert_eq!(
            endpoint_origin("http://user:pw@127.0.0.1:8081/hook#frag"),
            "http://127.0.0.1:8081"
        );
        assert_eq!(endpoint_origin("http://[::1]:9000/x"), "http://[::1]:9000");
        assert_eq!(endpoint_origin("not a url /secret"), "***");
    }

    #[test]
    fn an_attempt_error_loses_the_path_and_query_it_quotes() {
        let url = "https://hooks.example.com/services/T0/B0/secret-token?x=1";
        let error = format!("error sending request for url ({url}): connection refused");
        let redacted = endpoint_url_in(&error, url);
        assert_eq!(
            redacted,
            "error sending request for url (https://hooks.example.com:443): connection refused"
        );
        // The client quotes the URL as it normalized it.
        let unnormalized = "HTTPS://Hooks.Example.com/a/secret";
        let quoted = "error sending request for url (https://hooks.example.com/a/secret)";
        assert!(!endpoint_url_in(quoted, unnormalized).contains("secret"));
    }
}
