//! The webhook consumer side: [`Receiver`], a real HTTP server on
//! 127.0.0.1 that answers as a test scripts it and records what it got, and
//! the Standard Webhooks signatures, written from the specification, that a
//! consumer would check.

use std::collections::{HashSet, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse, HttpServer};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::waiting::{assert_throughout, wait_until};

// ---------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "receiver got a non-JSON body ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Debug)]
struct Behaviour {
    status: u16,
    delay: Option<Duration>,
    location: Option<String>,
    retry_after: Option<String>,
    script: VecDeque<u16>,
    /// Raw answer body instead of `receiver says <status>`.
    body: Option<Vec<u8>>,
    /// Extra headers on every answer.
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct ReceiverState {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<ReceivedRequest>>,
    /// Requests being answered now, and the most there ever were at once.
    open: Mutex<(usize, usize)>,
}

/// A real HTTP server that plays a webhook consumer. It answers every
/// request according to its current behaviour (changeable at any time) and
/// records what it got.
pub struct Receiver {
    port: u16,
    state: Arc<ReceiverState>,
}

impl Receiver {
    /// Starts on 127.0.0.1 with a free port; must run inside an actix
    /// system. Answers 200 until told otherwise.
    pub fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            behaviour: Mutex::new(Behaviour {
                status: 200,
                delay: None,
                location: None,
                retry_after: None,
                script: VecDeque::new(),
                body: None,
                headers: Vec::new(),
            }),
            requests: Mutex::new(Vec::new()),
            open: Mutex::new((0, 0)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .expect("receiver listens")
        .run();
        actix_rt::spawn(server);
        Receiver { port, state }
    }

    /// The URL to register as an endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Status for every request once the script is used up.
    pub fn set_status(&self, status: u16) {
        self.behaviour().status = status;
    }

    /// Statuses for the next requests, in order, before the default applies.
    pub fn script(&self, statuses: &[u16]) {
        self.behaviour().script = statuses.iter().copied().collect();
    }

    /// Waits this long before answering (the request is recorded first).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.behaviour().delay = delay;
    }

    /// Adds `Location` to every answer (use with a 3xx status).
    pub fn set_location(&self, location: Option<String>) {
        self.behaviour().location = location;
    }

    /// Adds `Retry-After` to every non-2xx answer.
    pub fn set_retry_after(&self, value: Option<String>) {
        self.behaviour().retry_after = value;
    }

    /// Answers with these raw bytes as the body (any bytes, e.g. a NUL).
    pub fn set_body(&self, body: Option<&[u8]>) {
        self.behaviour().body = body.map(<[u8]>::to_vec);
    }

    /// Adds these headers to every answer.
    pub fn set_headers(&self, headers: Vec<(String, String)>) {
        self.behaviour().headers = headers;
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// The most requests it was answering at one time.
    pub fn max_concurrent(&self) -> usize {
        self.state.open.lock().unwrap().1
    }

    /// Waits until at least `n` requests arrived; returns all of them.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        wait_until(timeout, || async {
            let requests = self.requests();
            if requests.len() >= n {
                Ok(requests)
            } else {
                Err(format!(
                    "receiver {} to get {n} requests, it has {}",
                    self.url(),
                    requests.len()
                ))
            }
        })
        .await
    }

    /// Answers after `delay` (use longer than the endpoint's timeout).
    pub fn set_hanging(&self, delay: Duration) {
        self.set_delay(Some(delay));
    }

    /// Answers 200 at once from now on.
    pub fn set_healthy(&self) {
        self.behaviour().script.clear();
        self.set_delay(None);
        self.set_status(200);
    }

    /// The `webhook-id` of every request, in arrival order.
    pub fn webhook_ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|r| r.header("webhook-id").map(str::to_string))
            .collect()
    }

    /// Each `webhook-id` once, in the order of its first arrival (a retry
    /// or a redelivery after a restart is not counted again).
    pub fn first_webhook_ids(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.webhook_ids()
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Shows that no request beyond the `count` expected arrives during
    /// `window` (see [`assert_throughout`]): fails at once if a further one
    /// comes, and at the end unless exactly `count` came.
    pub async fn assert_nothing_more_arrives(&self, count: usize, window: Duration, what: &str) {
        assert_throughout(window, what, || async {
            let arrived = self.count();
            if arrived <= count {
                Ok(())
            } else {
                Err(format!(
                    "receiver {} got {arrived} requests, {count} expected (webhook-ids {:?})",
                    self.url(),
                    self.webhook_ids()
                ))
            }
        })
        .await;
        assert_eq!(self.count(), count, "{what}");
    }

    fn behaviour(&self) -> std::sync::MutexGuard<'_, Behaviour> {
        self.state.behaviour.lock().unwrap()
    }
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<ReceiverState>>,
) -> HttpResponse {
    {
        let mut open = state.open.lock().unwrap();
        open.0 += 1;
        open.1 = open.1.max(open.0);
    }
    let response = answer(&request, body, &state).await;
    state.open.lock().unwrap().0 -= 1;
    response
}

async fn answer(request: &HttpRequest, body: web::Bytes, state: &ReceiverState) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.requests.lock().unwrap().push(ReceivedRequest {
        method: request.method().to_string(),
        path: request.path().to_string(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let (status, delay, location, retry_after, raw_body, extra_headers) = {
        let mut behaviour = state.behaviour.lock().unwrap();
        let status = behaviour.script.pop_front().unwrap_or(behaviour.status);
        (
            status,
            behaviour.delay,
            behaviour.location.clone(),
            behaviour.retry_after.clone(),
            behaviour.body.clone(),
            behaviour.headers.clone(),
        )
    };
    if let Some(delay) = delay {
        actix_rt::time::sleep(delay).await;
    }
    let status = actix_web::http::StatusCode::from_u16(status).expect("valid status code");
    let mut response = HttpResponse::build(status);
    if let Some(location) = location {
        response.insert_header(("Location", location));
    }
    for header in extra_headers {
        response.append_header(header);
    }
    if let Some(retry_after) = retry_after {
        if !status.is_success() {
            response.insert_header(("Retry-After", retry_after));
        }
    }
    match raw_body {
        Some(raw) => response.body(raw),
        None => response.body(format!("receiver says {}", status.as_u16())),
    }
}

/// Waits until each of `receivers` has got every one of `ids` (as its
/// `webhook-id`); after `timeout` panics with `what`, how many are missing
/// and a few of them.
pub async fn wait_for_webhook_ids(
    receivers: &[&Receiver],
    ids: &[&str],
    timeout: Duration,
    what: &str,
) {
    wait_until(timeout, || async {
        let missing: Vec<String> = receivers
            .iter()
            .enumerate()
            .flat_map(|(n, receiver)| {
                let received: HashSet<String> = receiver.webhook_ids().into_iter().collect();
                ids.iter()
                    .filter(move |id| !received.contains(**id))
                    .map(move |id| format!("{id} at receiver {n}"))
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {} of {} missing, e.g. {:?}",
                missing.len(),
                ids.len() * receivers.len(),
                &missing[..missing.len().min(5)]
            ))
        }
    })
    .await;
}

/// A loopback URL nobody listens on (a port bound, then released): every
/// attempt fails with a refused connection.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to release");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

/// The wall-clock time of a received request (from its monotonic `at`).
pub fn wall_time(request: &ReceivedRequest) -> chrono::DateTime<chrono::Utc> {
    let age = request.at.elapsed();
    chrono::Utc::now() - chrono::Duration::from_std(age).expect("request age fits")
}

/// Requests whose body is an operational event (`type` starting with
/// `hookrelay.`).
pub fn operational_events(requests: &[ReceivedRequest]) -> Vec<ReceivedRequest> {
    requests
        .iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["type"].as_str().map(|t| t.starts_with("hookrelay.")))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Signatures (Standard Webhooks, written from the specification)
// ---------------------------------------------------------------------------

/// A random endpoint secret in the `whsec_<base64>` format.
pub fn random_secret() -> String {
    let bytes: Vec<u8> = (0..3)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .take(32)
        .collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` with key the
/// base64-decoded secret after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| panic!("secret {secret:?} is not base64 after whsec_: {e}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Verifies a received request the way a Standard Webhooks consumer would:
/// the `webhook-signature` header (space-separated list) must contain a `v1`
/// signature of `webhook-id`, `webhook-timestamp` and the raw body.
pub fn verify_signature(secret: &str, request: &ReceivedRequest) -> Result<(), String> {
    let id = request.header("webhook-id").ok_or("no webhook-id header")?;
    let timestamp = request
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp header")?;
    let header = request
        .header("webhook-signature")
        .ok_or("no webhook-signature header")?;
    let expected = sign(secret, id, timestamp, &request.body);
    if header.split(' ').any(|candidate| candidate == expected) {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {header:?} does not contain {expected:?} (id {id:?}, timestamp {timestamp:?})"
        ))
    }
}
