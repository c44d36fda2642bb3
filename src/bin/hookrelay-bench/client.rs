//! The publishing side: the service's API as the bench uses it, and what
//! one publishing run produced.

use crate::receiver::Arrivals;
use crate::ADMIN_KEY;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The publishing side: an HTTP client and the service's URLs.
#[derive(Clone)]
pub struct Bench {
    client: reqwest::Client,
    base: String,
    tenants: String,
}

/// No request of the bench may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A management call may wait for a backlog move under way (an enable
/// right after a disable waits until the disable's hold is done): a minute
/// or more at 1,000,000.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a management call answered 503 is tried before the bench gives up.
const UNAVAILABLE_TRIES: u32 = 60;

/// What one publishing run produced.
pub struct Load {
    /// Accepted event id → when its publish request was sent.
    pub published: HashMap<String, Instant>,
    pub failures: usize,
    pub started: Instant,
    pub elapsed: Duration,
}

/// What `publish_counted` produced.
pub struct Counted {
    /// Indexed by event number.
    pub accepted: Vec<bool>,
    pub failures: Failures,
    pub elapsed: Duration,
}

impl Counted {
    pub fn accepted_count(&self) -> usize {
        self.accepted.iter().filter(|a| **a).count()
    }

    pub fn per_second(&self) -> f64 {
        self.accepted_count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Failed requests: how many, and the first reason, to show.
#[derive(Default)]
pub struct Failures {
    pub count: usize,
    pub first: Option<String>,
}

impl Failures {
    pub fn note(&mut self, reason: String) {
        self.count += 1;
        self.first.get_or_insert(reason);
    }

    pub fn add(&mut self, other: Failures) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.first {
            Some(first) => write!(f, "{} (first: {first})", self.count),
            None => write!(f, "{}", self.count),
        }
    }
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
    pub fn new(service_port: u16) -> Result<Bench, String> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{service_port}");
        Ok(Bench {
            client,
            tenants: format!("{base}/v1/tenants"),
            base,
        })
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

    /// One scrape of `/metrics`; returns the size of the text.
    pub async fn scrape_metrics(&self) -> Result<usize, String> {
        let response = self
            .client
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("/metrics answered {}", response.status()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(text.len())
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

    /// Sends `body` (if any) to `path` under the service's base URL and
    /// returns the answer's status and JSON body (`null` if it has none).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value), String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(MANAGEMENT_TIMEOUT)
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Like `call`, but a status other than 2xx is an error naming `what`.
    /// A 503 (the service asks to come back, e.g. while an endpoint loads
    /// its state) is tried again a second later, a bounded number of times.
    async fn call_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, String> {
        let mut tries = 1;
        loop {
            let (status, answer) = self.call(method.clone(), path, body).await?;
            if status.is_success() {
                return Ok(answer);
            }
            if status != reqwest::StatusCode::SERVICE_UNAVAILABLE || tries == UNAVAILABLE_TRIES {
                return Err(format!("{what} answered {status}: {answer}"));
            }
            tries += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// PATCHes the endpoint with `fields`.
    pub async fn update_endpoint(
        &self,
        tenant: &str,
        id: &str,
        fields: Value,
    ) -> Result<(), String> {
        let path = format!("/v1/tenants/{tenant}/endpoints/{id}");
        self.call_ok(
            reqwest::Method::PATCH,
            &path,
            Some(&fields),
            "updating the endpoint",
        )
        .await
        .map(drop)
    }

    /// `GET …/endpoints/{id}/health`.
    pub async fn endpoint_health(&self, tenant: &str, id: &str) -> Result<Value, String> {
        let path = format!("/v1/tenants/{tenant}/endpoints/{id}/health");
        self.call_ok(reqwest::Method::GET, &path, None, "the endpoint's health")
            .await
    }

    /// `POST …/endpoints/{id}/disable`.
    pub async fn disable_endpoint(&self, tenant: &str, id: &str) -> Result<Value, String> {
        let path = format!("/v1/tenants/{tenant}/endpoints/{id}/disable");
        self.call_ok(reqwest::Method::POST, &path, None, "disabling the endpoint")
            .await
    }

    /// `POST …/endpoints/{id}/enable` with `{"replay": "held"}`.
    pub async fn enable_replaying_held(&self, tenant: &str, id: &str) -> Result<Value, String> {
        let path = format!("/v1/tenants/{tenant}/endpoints/{id}/enable");
        let body = json!({"replay": "held"});
        self.call_ok(
            reqwest::Method::POST,
            &path,
            Some(&body),
            "enabling the endpoint",
        )
        .await
    }

    /// Publishes one event and answers how long the service took to
    /// accept it (202).
    pub async fn publish_one(&self, tenant: &str, body: &Value) -> Result<Duration, String> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{}/{tenant}/events", self.tenants))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        match response.status().as_u16() {
            202 => Ok(took),
            status => Err(format!("answered {status}")),
        }
    }

    /// Whether the API answers: `/healthz` is 200 and so is the first page
    /// of `tenant`'s endpoints, if a tenant is given.
    pub async fn is_serving(&self, tenant: Option<&str>) -> bool {
        let healthy = self.call(reqwest::Method::GET, "/healthz", None).await;
        if !matches!(healthy, Ok((status, _)) if status.is_success()) {
            return false;
        }
        let Some(tenant) = tenant else {
            return true;
        };
        let path = format!("/v1/tenants/{tenant}/endpoints?limit=1");
        let listed = self.call(reqwest::Method::GET, &path, None).await;
        matches!(listed, Ok((status, _)) if status.is_success())
    }

    /// Publishes `count` events with bodies `body(n)` from `concurrency`
    /// clients, as fast as they can; remembers only which were accepted
    /// (202), so that a million events cost the bench 1 MB.
    pub async fn publish_counted(
        &self,
        tenant: &str,
        count: usize,
        concurrency: usize,
        body: impl Fn(usize) -> Value + Send + Sync + 'static,
        progress: &Arc<AtomicUsize>,
    ) -> Result<Counted, String> {
        let accepted = Arc::new(Mutex::new(vec![false; count]));
        let next = Arc::new(AtomicUsize::new(0));
        let body = Arc::new(body);
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (client, accepted, next, body, progress) = (
                self.client.clone(),
                Arc::clone(&accepted),
                Arc::clone(&next),
                Arc::clone(&body),
                Arc::clone(progress),
            );
            let url = format!("{}/{tenant}/events", self.tenants);
            clients.push(tokio::spawn(async move {
                let mut failures = Failures::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return failures;
                    }
                    let response = client
                        .post(&url)
                        .bearer_auth(ADMIN_KEY)
                        .json(&body(n))
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().as_u16() == 202 => {
                            if let Ok(mut accepted) = accepted.lock() {
                                if let Some(slot) = accepted.get_mut(n) {
                                    *slot = true;
                                }
                            }
                        }
                        Ok(r) => failures.note(format!("answered {}", r.status())),
                        Err(error) => failures.note(error.to_string()),
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let mut failures = Failures::default();
        for task in clients {
            failures.add(task.await.map_err(|e| e.to_string())?);
        }
        let elapsed = started.elapsed();
        let accepted = std::mem::take(&mut *accepted.lock().map_err(|e| e.to_string())?);
        Ok(Counted {
            accepted,
            failures,
            elapsed,
        })
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
