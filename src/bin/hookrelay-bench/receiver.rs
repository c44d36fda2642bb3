//! The receivers the service delivers to, on loopback, each on its own thread.

use crate::spawn_named;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Endpoint index → event id → arrival times.
pub type Arrivals = Arc<Mutex<HashMap<usize, HashMap<String, Vec<Instant>>>>>;

pub fn start_receiver(arrivals: Arrivals) -> Result<u16, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_named("bench-receiver", move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::new(arrivals);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/ep/{n}", web::post().to(receive))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the receiver on loopback");
            let _ = tx.send(server.addrs()[0].port());
            server.run().await
        })
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

/// Takes the body so that the connection stays reusable for the next request.
async fn receive(
    arrivals: web::Data<Arrivals>,
    request: HttpRequest,
    endpoint: web::Path<usize>,
    _body: web::Bytes,
) -> HttpResponse {
    let now = Instant::now();
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut map) = arrivals.lock() {
        map.entry(endpoint.into_inner())
            .or_default()
            .entry(id)
            .or_default()
            .push(now);
    }
    HttpResponse::NoContent().finish()
}

/// A receiver on its own thread that holds every request for `hold` (an async
/// timer, so held requests cost no threads) and counts the requests it got.
pub fn start_hanging_receiver(hold: Duration, requests: Arc<AtomicUsize>) -> Result<u16, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    spawn_named("bench-hanging", move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::new((hold, requests));
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(hang))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the hanging receiver on loopback");
            let _ = tx.send(server.addrs()[0].port());
            server.run().await
        })
    });
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

async fn hang(state: web::Data<(Duration, Arc<AtomicUsize>)>, _body: web::Bytes) -> HttpResponse {
    state.1.fetch_add(1, Ordering::Relaxed);
    actix_web::rt::time::sleep(state.0).await;
    HttpResponse::NoContent().finish()
}

/// A loopback port with nothing listening: bound, then released.
pub fn refused_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
