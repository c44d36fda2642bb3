//! The HTTP side of an attempt: sign, send, and describe what happened.

use crate::core::endpoint::EndpointConfig;
use crate::core::retry::parse_retry_after;
use crate::core::signature_scheme::SignedMessage;
use crate::core::text::{storable, storable_lossy};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::{Duration, Instant};

/// Response bodies are kept for diagnosis, cut at this size.
pub const MAX_RESPONSE_BODY: usize = 10 * 1024;

const SIGNATURE_USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));

/// One client for every endpoint: it keeps connections alive per host.
/// Redirects are never followed: a 3xx counts as a failed attempt.
pub fn build_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// How an attempt ended, in the words stored with the attempt. Every
/// string in it is storable ([`crate::core::text::storable`]): whatever the
/// receiver or the network said, the attempt row can be written.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status: Option<u16>,
    pub response_headers: Option<BTreeMap<String, String>>,
    pub response_body: Option<String>,
    pub error: Option<(ErrorKind, String)>,
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Connect,
    Dns,
    Tls,
    HttpStatus,
    Body,
    Request,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Body => "body",
            ErrorKind::Request => "request",
        }
    }
}

/// Sends one attempt of `body` for an event, signed in the endpoint's scheme.
pub async fn attempt(
    client: &reqwest::Client,
    endpoint: &EndpointConfig,
    event_id: &str,
    event_type: &str,
    body: &str,
) -> AttemptReport {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let signature = endpoint.signer.headers(&SignedMessage {
        event_id,
        event_type,
        timestamp: now.timestamp(),
        body: body.as_bytes(),
    });

    let mut request = client
        .post(&endpoint.url)
        .timeout(endpoint.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, SIGNATURE_USER_AGENT);
    for (name, value) in signature.iter().chain(&endpoint.headers) {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut report = AttemptReport {
        started_at_ms: now.timestamp_millis(),
        duration_ms: 0,
        status: None,
        response_headers: None,
        response_body: None,
        error: None,
        retry_after: None,
    };
    match request.body(body.to_owned()).send().await {
        Ok(mut response) => {
            let status = response.status();
            report.status = Some(status.as_u16());
            report.retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now));
            report.response_headers = Some(header_map(response.headers()));
            report.response_body = Some(read_capped(&mut response).await);
            if !status.is_success() {
                report.error = Some((ErrorKind::HttpStatus, format!("endpoint answered {status}")));
            }
        }
        Err(error) => report.error = Some(classify(&error)),
    }
    report.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    report
}

/// Reads at most [`MAX_RESPONSE_BODY`] bytes; the rest is never downloaded.
/// The cap counts received bytes: replacement characters may make the
/// stored text a little longer.
async fn read_capped(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // A body cut short by the peer or the timeout still tells the
            // status; what arrived is kept.
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_RESPONSE_BODY);
    storable_lossy(&body)
}

fn header_map(headers: &HeaderMap<HeaderValue>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value): (&HeaderName, &HeaderValue)| {
            (
                storable(name.as_str()).into_owned(),
                storable_lossy(value.as_bytes()),
            )
        })
        .collect()
}

fn classify(error: &reqwest::Error) -> (ErrorKind, String) {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    let lower = message.to_ascii_lowercase();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        ErrorKind::Dns
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        ErrorKind::Tls
    } else if error.is_connect() {
        ErrorKind::Connect
    } else if error.is_body() || error.is_decode() {
        ErrorKind::Body
    } else {
        ErrorKind::Request
    };
    (kind, storable(&message).into_owned())
}
