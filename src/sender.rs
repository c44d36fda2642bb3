//! The HTTP side of an attempt: sign, send, and describe what happened.

use crate::core::delivery::attempt_budget::AttemptBudget;
use crate::core::delivery::captured_headers::CapturedHeaders;
use crate::core::delivery::retry::parse_retry_after;
use crate::core::endpoint::{EndpointConfig, HttpMethod};
use crate::core::input::target_policy::{vet, vet_literal, Blocked};
use crate::core::input::text::{storable, storable_lossy};
use crate::core::secrets::signature_scheme::SignedMessage;
use crate::store::models::AttemptRow;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Response bodies are kept for diagnosis, cut at this size.
pub const MAX_RESPONSE_BODY: usize = 10 * 1024;

const SIGNATURE_USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));

/// The HTTP clients every endpoint shares (they keep connections alive per
/// host) and the target policy they enforce.
#[derive(Clone)]
pub struct Transport {
    /// For tenants' endpoints: only ever connects to vetted addresses.
    vetted: reqwest::Client,
    /// For the operator's alert endpoint, whose URL is the operator's own
    /// configuration, not a tenant's: it may point anywhere.
    trusted: reqwest::Client,
    /// Non-public ranges the operator allows (`HOOKRELAY_ALLOW_TARGETS`).
    allow: Arc<[IpNet]>,
    /// Every attempt, an endpoint actor's or an operator's, takes a slot.
    slots: AttemptSlots,
    /// This instance's name, recorded with every attempt it makes.
    instance: Arc<str>,
    /// Whether a request names the instance (`hookrelay-instance`).
    send_instance_header: bool,
}

/// The header that names the instance making an attempt, when enabled.
pub const INSTANCE_HEADER: &str = "hookrelay-instance";

impl Transport {
    /// `instance` names this instance in the attempts it records, and in
    /// their requests when `send_instance_header` is set.
    pub fn new(
        allow: Vec<IpNet>,
        budget: AttemptBudget,
        instance: &str,
        send_instance_header: bool,
    ) -> reqwest::Result<Transport> {
        let allow: Arc<[IpNet]> = allow.into();
        let vetted = client_builder()
            .dns_resolver(Arc::new(VettingResolver {
                allow: Arc::clone(&allow),
            }))
            // Through a proxy the proxy's address is the one resolved and
            // the target is never vetted.
            .no_proxy()
            .build()?;
        Ok(Transport {
            vetted,
            trusted: client_builder().build()?,
            allow,
            slots: AttemptSlots::new(budget),
            instance: instance.into(),
            send_instance_header,
        })
    }

    /// Waits for a slot of `tenant` in the attempt budget; the attempt
    /// holds it until it is dropped.
    pub async fn slot(&self, tenant: &str) -> Slot {
        self.slots.acquire(tenant).await
    }

    /// The client an endpoint is sent with and its parsed URL, or why it
    /// may not be sent to.
    fn route(
        &self,
        endpoint: &EndpointConfig,
    ) -> Result<(&reqwest::Client, Url), (ErrorKind, String)> {
        let url = Url::parse(&endpoint.url).map_err(|e| {
            (
                ErrorKind::Request,
                storable(&format!("invalid URL: {e}")).into_owned(),
            )
        })?;
        if endpoint.trusted_target {
            return Ok((&self.trusted, url));
        }
        // An IP-literal host is connected to without asking the resolver,
        // so it is vetted here, before anything is sent.
        vet_literal(&url, &self.allow)
            .map_err(|blocked| (ErrorKind::Blocked, blocked.to_string()))?;
        Ok((&self.vetted, url))
    }
}

/// The attempt budget ([`AttemptBudget`]) carried out: a slot is a permit
/// of the global semaphore and one of its tenant's. Both semaphores are
/// fair (first come, first served), and a tenant's attempts queue for the
/// global one only once they hold one of the tenant's permits, so a tenant
/// never has more than its share waiting ahead of the others.
#[derive(Clone)]
struct AttemptSlots {
    total: Arc<Semaphore>,
    per_tenant: usize,
    /// One small semaphore per tenant that ever sent, created on first use.
    tenants: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A slot of the attempt budget, given back when dropped.
pub struct Slot {
    _tenant: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl AttemptSlots {
    fn new(budget: AttemptBudget) -> AttemptSlots {
        AttemptSlots {
            total: Arc::new(Semaphore::new(budget.total)),
            per_tenant: budget.per_tenant,
            tenants: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn acquire(&self, tenant: &str) -> Slot {
        let share = {
            let mut tenants = self
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                tenants
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))),
            )
        };
        // Neither semaphore is ever closed.
        let tenant = share
            .acquire_owned()
            .await
            .expect("the attempt budget's semaphores stay open");
        let total = Arc::clone(&self.total)
            .acquire_owned()
            .await
            .expect("the attempt budget's semaphores stay open");
        Slot {
            _tenant: tenant,
            _total: total,
        }
    }
}

/// Redirects are never followed: a 3xx counts as a failed attempt.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
}

/// Resolves a host name and refuses it when ANY of its addresses is
/// blocked, not just when all are: a name that mixes a public and a private
/// address is an attack or a mistake either way. The client connects only
/// to the addresses returned here, so a name that answers differently the
/// next time it is asked (DNS rebinding) cannot get past the check.
struct VettingResolver {
    allow: Arc<[IpNet]>,
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = Arc::clone(&self.allow);
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            if let Some(blocked) = addrs.iter().find_map(|addr| vet(addr.ip(), &allow).err()) {
                return Err(Box::new(BlockedName {
                    host: host.to_owned(),
                    blocked,
                }) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A host name that resolves to a refused address.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to a refused address: {blocked}")]
struct BlockedName {
    host: String,
    blocked: Blocked,
}

/// How an attempt ended, in the words stored with the attempt. Every
/// string in it is storable ([`crate::core::input::text::storable`]): whatever the
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
    /// The instance that made the attempt.
    pub instance: Arc<str>,
}

impl AttemptReport {
    /// The row that stores this report as the `attempt`-th attempt of a
    /// delivery to `endpoint_id`.
    pub fn to_row(&self, delivery_id: &str, attempt: u32, endpoint_id: &str) -> AttemptRow {
        AttemptRow {
            id: crate::ids::time_ordered("atm"),
            delivery_id: delivery_id.to_owned(),
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            started_at: self.started_at_ms,
            duration_ms: self.duration_ms,
            status_code: self.status.map(i32::from),
            response_headers: self
                .response_headers
                .as_ref()
                .and_then(|h| serde_json::to_string(h).ok()),
            response_body: self.response_body.clone(),
            error_kind: self
                .error
                .as_ref()
                .map(|(kind, _)| kind.as_str().to_owned()),
            error_message: self.error.as_ref().map(|(_, message)| message.clone()),
            endpoint_id: Some(endpoint_id.to_owned()),
            instance: Some(self.instance.to_string()),
        }
    }
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
    /// The target policy refused the destination; nothing was sent.
    Blocked,
    /// The endpoint's secret could not be read; nothing was sent.
    Signing,
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
            ErrorKind::Blocked => "blocked",
            ErrorKind::Signing => "signing",
        }
    }
}

/// Sends one attempt of `body` for an event, signed in the endpoint's scheme.
pub async fn attempt(
    transport: &Transport,
    endpoint: &EndpointConfig,
    event_id: &str,
    event_type: &str,
    body: &str,
) -> AttemptReport {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let mut report = AttemptReport {
        started_at_ms: now.timestamp_millis(),
        duration_ms: 0,
        status: None,
        response_headers: None,
        response_body: None,
        error: None,
        retry_after: None,
        instance: Arc::clone(&transport.instance),
    };
    let signature = endpoint
        .signing
        .as_ref()
        .map(|signing| {
            let message = SignedMessage {
                event_id,
                event_type,
                timestamp: now.timestamp(),
                body: body.as_bytes(),
            };
            signing.headers(&message, now.timestamp_millis())
        })
        .map_err(|reason| (ErrorKind::Signing, storable(reason).into_owned()));
    // Nothing is sent unsigned, nor to a refused target.
    let prepared = signature.and_then(|signature| Ok((signature, transport.route(endpoint)?)));
    let sent = match prepared {
        Ok((signature, (client, url))) => {
            let mut request = client
                .request(method(endpoint.method), url)
                .timeout(endpoint.timeout)
                .header(CONTENT_TYPE, "application/json")
                .header(USER_AGENT, SIGNATURE_USER_AGENT);
            if transport.send_instance_header {
                request = request.header(INSTANCE_HEADER, &*transport.instance);
            }
            for (name, value) in signature.iter().chain(&endpoint.headers) {
                request = request.header(name.as_str(), value.as_str());
            }
            request
                .body(body.to_owned())
                .send()
                .await
                .map_err(|error| classify(&error))
        }
        Err(refused) => Err(refused),
    };
    match sent {
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
        Err(error) => report.error = Some(error),
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

fn method(method: HttpMethod) -> reqwest::Method {
    match method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
    }
}

/// The headers kept of an answer, bounded as [`CapturedHeaders`] decides.
fn header_map(headers: &HeaderMap<HeaderValue>) -> BTreeMap<String, String> {
    CapturedHeaders::capture(
        headers
            .iter()
            .map(|(name, value): (&HeaderName, &HeaderValue)| {
                (
                    storable(name.as_str()).into_owned(),
                    storable_lossy(value.as_bytes()),
                )
            }),
    )
    .to_stored()
}

fn classify(error: &reqwest::Error) -> (ErrorKind, String) {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<BlockedName>() {
            return (
                ErrorKind::Blocked,
                storable(&blocked.to_string()).into_owned(),
            );
        }
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
