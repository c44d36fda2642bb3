//! The receivers the service delivers to, on loopback, each on its own thread.

use crate::spawn_named;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Endpoint index → event id → arrival times.
pub type Arrivals = Arc<Mutex<HashMap<usize, HashMap<String, Vec<Instant>>>>>;

/// The fast receiver of the in-process scenarios: every arrival, by
/// endpoint index (`/ep/{n}`) and event id.
pub struct FastReceiver {
    pub port: u16,
    pub arrivals: Arrivals,
}

impl FastReceiver {
    /// The URL of endpoint index `n`.
    pub fn url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/ep/{n}", self.port)
    }
}

/// Binds a listener on a free loopback port, so that a bind error is
/// reported to the caller rather than inside the receiver's thread.
fn loopback_listener() -> Result<(TcpListener, u16), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    Ok((listener, port))
}

pub fn start_receiver() -> Result<FastReceiver, String> {
    let (listener, port) = loopback_listener()?;
    let arrivals: Arrivals = Arc::default();
    let data = web::Data::new(Arc::clone(&arrivals));
    spawn_named("bench-receiver", move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/ep/{n}", web::post().to(receive))
            })
            .workers(1)
            .listen(listener)?
            .run()
            .await
        })
    });
    Ok(FastReceiver { port, arrivals })
}

/// Takes the body so that the connection stays reusable for the next request.
async fn receive(
    arrivals: web::Data<Arrivals>,
    request: HttpRequest,
    endpoint: web::Path<usize>,
    _body: web::Bytes,
) -> HttpResponse {
    let now = Instant::now();
    let id = webhook_id(&request).to_owned();
    if let Ok(mut map) = arrivals.lock() {
        map.entry(endpoint.into_inner())
            .or_default()
            .entry(id)
            .or_default()
            .push(now);
    }
    HttpResponse::NoContent().finish()
}

fn webhook_id(request: &HttpRequest) -> &str {
    request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A receiver on its own thread that holds every request for `hold` (an async
/// timer, so held requests cost no threads) and counts the requests it got.
pub fn start_hanging_receiver(hold: Duration, requests: Arc<AtomicUsize>) -> Result<u16, String> {
    let (listener, port) = loopback_listener()?;
    let data = web::Data::new((hold, requests));
    spawn_named("bench-hanging", move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(hang))
            })
            .workers(1)
            .listen(listener)?
            .run()
            .await
        })
    });
    Ok(port)
}

async fn hang(state: web::Data<(Duration, Arc<AtomicUsize>)>, _body: web::Bytes) -> HttpResponse {
    state.1.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::time::sleep(state.0).await;
    HttpResponse::NoContent().finish()
}

/// A loopback port with nothing listening: bound, then released.
pub fn refused_port() -> Result<u16, String> {
    loopback_listener().map(|(_, port)| port)
}

/// A refused loopback port other than `taken` (a port the bench has
/// already chosen, which may be free right now too).
pub fn refused_port_besides(taken: u16) -> Result<u16, String> {
    for _ in 0..100 {
        let port = refused_port()?;
        if port != taken {
            return Ok(port);
        }
    }
    Err(format!("every free port found was {taken}"))
}

/// What a counting receiver saw of events `{prefix}-{n}`, `n < capacity`:
/// a request count per event (a vector, not a map, so that a million
/// events cost the bench a few MB).
pub struct Tally {
    prefix: String,
    counts: Mutex<Vec<u32>>,
    /// Events received at least once.
    unique: AtomicUsize,
    /// Requests whose `webhook-id` is not one of ours.
    foreign: AtomicUsize,
    first_new: Mutex<Option<Instant>>,
    last_new: Mutex<Option<Instant>>,
}

/// The receiver's view of the events a publisher got accepted.
pub struct TallyOutcome {
    /// Accepted events received at least once.
    pub delivered: usize,
    /// Accepted events never received.
    pub lost: usize,
    /// Requests beyond the first for the same event.
    pub duplicates: usize,
    /// Requests for events that were not accepted or are not ours.
    pub unexpected: usize,
}

impl Tally {
    pub fn unique(&self) -> usize {
        self.unique.load(Ordering::Relaxed)
    }

    /// When the first and the latest new event arrived.
    pub fn first_and_last(&self) -> (Option<Instant>, Option<Instant>) {
        let read = |slot: &Mutex<Option<Instant>>| slot.lock().ok().and_then(|at| *at);
        (read(&self.first_new), read(&self.last_new))
    }

    fn record(&self, id: &str) {
        let index = id
            .strip_prefix(self.prefix.as_str())
            .and_then(|n| n.parse::<usize>().ok());
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let Some(count) = index.and_then(|n| counts.get_mut(n)) else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        *count = count.saturating_add(1);
        if *count == 1 {
            self.unique.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if let Ok(mut first) = self.first_new.lock() {
                first.get_or_insert(now);
            }
            if let Ok(mut last) = self.last_new.lock() {
                *last = Some(now);
            }
        }
    }

    /// Compares what arrived with `accepted` (indexed like the counts).
    pub fn outcome(&self, accepted: &[bool]) -> Result<TallyOutcome, String> {
        let counts = self.counts.lock().map_err(|e| e.to_string())?;
        let mut outcome = TallyOutcome {
            delivered: 0,
            lost: 0,
            duplicates: 0,
            unexpected: self.foreign.load(Ordering::Relaxed),
        };
        for (n, &count) in counts.iter().enumerate() {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            match (accepted.get(n).copied().unwrap_or(false), count) {
                (true, 0) => outcome.lost += 1,
                (true, count) => {
                    outcome.delivered += 1;
                    outcome.duplicates += count - 1;
                }
                (false, count) => outcome.unexpected += count,
            }
        }
        Ok(outcome)
    }
}

/// A fast receiver that answers 204 to everything and tallies the
/// deliveries of events `{prefix}{n}` by their `webhook-id`.
pub fn start_counting_receiver(prefix: &str, capacity: usize) -> Result<(u16, Arc<Tally>), String> {
    let (listener, port) = loopback_listener()?;
    let tally = Arc::new(Tally {
        prefix: prefix.to_owned(),
        counts: Mutex::new(vec![0; capacity]),
        unique: AtomicUsize::new(0),
        foreign: AtomicUsize::new(0),
        first_new: Mutex::new(None),
        last_new: Mutex::new(None),
    });
    let data = web::Data::new(Arc::clone(&tally));
    spawn_named("bench-counting", move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(count))
            })
            .workers(1)
            .listen(listener)?
            .run()
            .await
        })
    });
    Ok((port, tally))
}

/// Takes the body so that the connection stays reusable for the next request.
async fn count(
    tally: web::Data<Arc<Tally>>,
    request: HttpRequest,
    _body: web::Bytes,
) -> HttpResponse {
    tally.record(webhook_id(&request));
    HttpResponse::NoContent().finish()
}
