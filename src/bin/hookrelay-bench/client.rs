//! The publishing side: the service's API as the bench uses it, and what
//! one publishing run produced.

use crate::receiver::Arrivals;
use crate::ADMIN_KEY;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The publishing side: an HTTP client and the service's tenants URL.
pub struct Bench {
    client: reqwest::Client,
    tenants: String,
    receiver_port: u16,
}

/// What one publishing run produced.
pub struct Load {
    /// Accepted event id → when its publish request was sent.
    pub published: HashMap<String, Instant>,
    pub failures: usize,
    pub started: Instant,
    pub elapsed: Duration,
}

/// First arrivals at some endpoints of the events of one `Load`.
pub struct Deliveries {
    /// Sorted publish→first receipt latencies.
    pub latencies: Vec<Duration>,
    pub duplicates: usize,
    /// From the first publish to the last first arrival, in seconds.
    pub elapsed: f64,
}

impl Bench {
    pub fn new(service_port: u16, receiver_port: u16) -> Bench {
        Bench {
            client: reqwest::Client::new(),
            tenants: format!("http://127.0.0.1:{service_port}/v1/tenants"),
            receiver_port,
        }
    }

    /// The fast receiver's URL for endpoint index `n`.
    pub fn receiver_url(&self, n: usize) -> String {
        format!("http://127.0.0.1:{}/ep/{n}", self.receiver_port)
    }

    /// POSTs `body` to `url` and returns the created resource.
    pub async fn create(&self, url: String, body: Value, what: &str) -> Result<Value, String> {
        let response = self
            .client
            .post(url)
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("creating {what} answered {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    pub async fn create_tenant(&self, tenant: &str) -> Result<(), String> {
        let body = json!({"id": tenant, "name": tenant});
        self.create(self.tenants.clone(), body, "the tenant")
            .await
            .map(drop)
    }

    /// Creates an endpoint and returns its id.
    pub async fn create_endpoint(&self, tenant: &str, fields: Value) -> Result<String, String> {
        let url = format!("{}/{tenant}/endpoints", self.tenants);
        let created = self.create(url, fields, "an endpoint").await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the created endpoint has no id".to_owned())
    }

    /// The endpoint's `stats` as the service reports them (`null` if none).
    pub async fn endpoint_stats(&self, tenant: &str, id: &str) -> Result<Value, String> {
        let url = format!("{}/{tenant}/endpoints/{id}", self.tenants);
        let response = self
            .client
            .get(url)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut endpoint: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(endpoint["stats"].take())
    }

    /// Publishes `events` events with ids `{prefix}-{n}` from `concurrency`
    /// clients, at most `rate` a second if `rate` is positive.
    pub async fn publish(
        &self,
        tenant: &str,
        prefix: &str,
        events: usize,
        concurrency: usize,
        rate: f64,
    ) -> Result<Load, String> {
        let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..concurrency {
            let (client, published, next, url, prefix) = (
                self.client.clone(),
                Arc::clone(&published),
                Arc::clone(&next),
                format!("{}/{tenant}/events", self.tenants),
                prefix.to_owned(),
            );
            clients.push(tokio::spawn(async move {
                let mut failures = 0usize;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= events {
                        return failures;
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(n as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let id = format!("{prefix}-{n}");
                    let at = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&json!({"type": "bench.event", "id": id, "payload": {"n": n}}))
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().as_u16() == 202 => {
                            if let Ok(mut map) = published.lock() {
                                map.insert(id, at);
                            }
                        }
                        _ => failures += 1,
                    }
                }
            }));
        }
        let mut failures = 0;
        for task in clients {
            failures += task.await.map_err(|e| e.to_string())?;
        }
        let elapsed = started.elapsed();
        let published = std::mem::take(&mut *published.lock().map_err(|e| e.to_string())?);
        Ok(Load {
            published,
            failures,
            started,
            elapsed,
        })
    }
}

impl Load {
    pub fn accepted(&self) -> usize {
        self.published.len()
    }

    pub fn events_per_second(&self) -> f64 {
        self.accepted() as f64 / self.elapsed.as_secs_f64()
    }

    /// Waits until `endpoints`, which only this load's events reach, have
    /// received every accepted event, or until `deadline`.
    pub async fn wait_for(&self, arrivals: &Arrivals, endpoints: &[usize], deadline: Instant) {
        let expected = self.accepted() * endpoints.len();
        loop {
            let received: usize = arrivals
                .lock()
                .map(|m| {
                    endpoints
                        .iter()
                        .filter_map(|n| m.get(n))
                        .map(|ids| ids.len())
                        .sum()
                })
                .unwrap_or_default();
            if received >= expected || Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// This load's deliveries to `endpoints`, as the receiver saw them.
    pub fn deliveries(
        &self,
        arrivals: &Arrivals,
        endpoints: &[usize],
    ) -> Result<Deliveries, String> {
        let arrivals = arrivals.lock().map_err(|e| e.to_string())?;
        let mut latencies: Vec<Duration> = Vec::new();
        let mut last_arrival = self.started;
        let mut duplicates = 0;
        let ids = endpoints.iter().filter_map(|n| arrivals.get(n));
        for (id, times) in ids.flatten() {
            let Some(sent) = self.published.get(id) else {
                continue;
            };
            duplicates += times.len() - 1;
            let first = times.iter().min().copied().unwrap_or(*sent);
            last_arrival = last_arrival.max(first);
            latencies.push(first.saturating_duration_since(*sent));
        }
        latencies.sort();
        let elapsed = last_arrival
            .saturating_duration_since(self.started)
            .as_secs_f64()
            .max(1e-9);
        Ok(Deliveries {
            latencies,
            duplicates,
            elapsed,
        })
    }
}

impl Deliveries {
    pub fn delivered(&self) -> usize {
        self.latencies.len()
    }

    pub fn per_second(&self) -> f64 {
        self.delivered() as f64 / self.elapsed
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.latencies
            .get(((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}
