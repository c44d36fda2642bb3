//! What the service counts for Prometheus: one registry per application,
//! filled by the actors, the writer and the API as things happen, and
//! rendered in the text format at `/metrics`.
//!
//! Labels are bounded by design: status classes, error kinds, outcomes and
//! reasons are short fixed lists. Endpoint and tenant labels (one series
//! per endpoint or tenant and label set) are added only when the operator
//! asks for them ([`MetricLabels`]).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The gauges read from the database are read again at most this often,
/// however often Prometheus scrapes (their counts are not free).
const STORED_COUNTS_EVERY: Duration = Duration::from_secs(5);

/// Which optional labels the attempt, delivery and event metrics carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricLabels {
    pub per_endpoint: bool,
    pub per_tenant: bool,
}

/// Seconds, from 1 ms to 2 minutes: publish, attempt and commit times.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Seconds from publish to delivery, which includes retries: up to a day.
const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0, 86400.0,
];

/// Jobs in one writer commit.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The writer's share: commits, their latency and size, and its queue.
#[derive(Clone)]
pub struct WriterMetrics {
    pub commits: IntCounter,
    pub failed_commits: IntCounter,
    pub commit_seconds: Histogram,
    pub group_size: Histogram,
    pub queue_depth: IntGauge,
}

/// Every metric the service exports. Cheap to share: each field is a
/// handle on its series.
pub struct Metrics {
    registry: Registry,
    labels: MetricLabels,
    events_accepted: IntCounterVec,
    events_refused: IntCounterVec,
    publish_seconds: Histogram,
    attempts: IntCounterVec,
    attempt_seconds: HistogramVec,
    deliveries_finished: IntCounterVec,
    delivery_seconds: HistogramVec,
    alerts: IntCounterVec,
    status_changes: IntCounterVec,
    actor_restarts: IntCounter,
    backlog_move_batches: IntCounterVec,
    in_flight: IntGauge,
    live_actors: IntGauge,
    deliveries_stored: IntGaugeVec,
    endpoints_by_status: IntGaugeVec,
    endpoints_by_breaker: IntGaugeVec,
    pub writer: WriterMetrics,
    stored_counts_read: Mutex<Option<Instant>>,
}

impl Metrics {
    pub fn new(labels: MetricLabels) -> Result<Arc<Metrics>, prometheus::Error> {
        let registry = Registry::new_custom(Some("hookrelay".to_owned()), None)?;
        let scoped = |base: &[&'static str], endpoint: bool| {
            let mut names = Vec::new();
            if labels.per_tenant {
                names.push("tenant");
            }
            if labels.per_endpoint && endpoint {
                names.push("endpoint");
            }
            names.extend_from_slice(base);
            names
        };
        let metrics = Metrics {
            events_accepted: counter_vec(
                &registry,
                "events_accepted_total",
                "Events stored and answered 2xx (a repeated idempotency key counts again).",
                &scoped(&[], false),
            )?,
            events_refused: counter_vec(
                &registry,
                "events_refused_total",
                "Publishes answered with an error, by reason.",
                &["reason"],
            )?,
            publish_seconds: histogram(
                &registry,
                "publish_duration_seconds",
                "Time to answer a publish, stored on disk when it is 2xx.",
                SECONDS_BUCKETS,
            )?,
            attempts: counter_vec(
                &registry,
                "attempts_total",
                "HTTP attempts recorded, by status class (2xx to 5xx, or none) and error kind.",
                &scoped(&["status_class", "error_kind"], true),
            )?,
            attempt_seconds: histogram_vec(
                &registry,
                "attempt_duration_seconds",
                "Duration of an HTTP attempt, from sending to the end of the response.",
                SECONDS_BUCKETS,
                &scoped(&[], true),
            )?,
            deliveries_finished: counter_vec(
                &registry,
                "deliveries_finished_total",
                "Deliveries that reached an end by an attempt: succeeded, or failed for good.",
                &scoped(&["outcome"], true),
            )?,
            delivery_seconds: histogram_vec(
                &registry,
                "publish_to_delivery_seconds",
                "From the publish of an event to the attempt that delivered it.",
                DELIVERY_BUCKETS,
                &scoped(&[], true),
            )?,
            alerts: counter_vec(
                &registry,
                "alerts_total",
                "Alerts raised, by kind (endpoint.failing, endpoint.disabled, endpoint.recovered, endpoint.enabled).",
                &["kind"],
            )?,
            status_changes: counter_vec(
                &registry,
                "endpoint_status_changes_total",
                "Endpoints disabled or enabled, by change and by whom (failures or api).",
                &["change", "by"],
            )?,
            actor_restarts: counter(
                &registry,
                "actor_restarts_total",
                "Endpoint actors restarted by their supervisor.",
            )?,
            backlog_move_batches: counter_vec(
                &registry,
                "backlog_move_batches_total",
                "Batches of a backlog move (hold, replay, cancel) written.",
                &["move"],
            )?,
            in_flight: gauge(
                &registry,
                "deliveries_in_flight",
                "HTTP attempts under way in this instance.",
            )?,
            live_actors: gauge(
                &registry,
                "endpoint_actors",
                "Endpoint actors running in this instance.",
            )?,
            deliveries_stored: gauge_vec(
                &registry,
                "deliveries",
                "Deliveries waiting in the database, by state (pending, held); read at scrape, at most every 5 s.",
                &["state"],
            )?,
            endpoints_by_status: gauge_vec(
                &registry,
                "endpoints",
                "Endpoints in the database, by status; read at scrape, at most every 5 s.",
                &["status"],
            )?,
            endpoints_by_breaker: gauge_vec(
                &registry,
                "endpoint_breakers",
                "Endpoints in the database, by circuit-breaker state; read at scrape, at most every 5 s.",
                &["state"],
            )?,
            writer: WriterMetrics {
                commits: counter(&registry, "writer_commits_total", "Writer transactions committed.")?,
                failed_commits: counter(
                    &registry,
                    "writer_failed_commits_total",
                    "Writer transactions that failed (the database refused or was away).",
                )?,
                commit_seconds: histogram(
                    &registry,
                    "writer_commit_duration_seconds",
                    "Time a writer transaction took, statements and commit.",
                    SECONDS_BUCKETS,
                )?,
                group_size: histogram(
                    &registry,
                    "writer_group_size",
                    "Jobs (ingestions, attempt results, calls) in one writer transaction.",
                    GROUP_BUCKETS,
                )?,
                queue_depth: gauge(
                    &registry,
                    "writer_queue_depth",
                    "Jobs queued for the writer and not yet taken by a lane.",
                )?,
            },
            registry,
            labels,
            stored_counts_read: Mutex::new(None),
        };
        Ok(Arc::new(metrics))
    }

    pub fn labels(&self) -> MetricLabels {
        self.labels
    }

    /// The text format, for a scrape.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    pub fn publish_answered(&self, tenant: &str, status: u16, seconds: f64) {
        self.publish_seconds.observe(seconds);
        if (200..300).contains(&status) {
            self.events_accepted
                .with_label_values(&self.values(tenant, "", &[], false))
                .inc();
        } else {
            self.events_refused
                .with_label_values(&[refusal_reason(status)])
                .inc();
        }
    }

    /// An attempt whose result was recorded.
    pub fn attempt_recorded(&self, attempt: &RecordedAttempt<'_>) {
        let class = status_class(attempt.status);
        let values = self.values(
            attempt.tenant,
            attempt.endpoint,
            &[class, attempt.error_kind.unwrap_or("none")],
            true,
        );
        self.attempts.with_label_values(&values).inc();
        let scope = self.values(attempt.tenant, attempt.endpoint, &[], true);
        self.attempt_seconds
            .with_label_values(&scope)
            .observe(attempt.duration_ms as f64 / 1000.0);
        if let Some(outcome) = attempt.finished {
            let values = self.values(attempt.tenant, attempt.endpoint, &[outcome], true);
            self.deliveries_finished.with_label_values(&values).inc();
        }
        if let (Some("succeeded"), Some(published)) = (attempt.finished, attempt.published_at_ms) {
            let waited = (attempt.ended_at_ms - published).max(0);
            self.delivery_seconds
                .with_label_values(&scope)
                .observe(waited as f64 / 1000.0);
        }
    }

    pub fn alert_raised(&self, kind: &str) {
        self.alerts.with_label_values(&[kind]).inc();
    }

    /// `change` is `disabled` or `enabled`, `by` is `failures` or `api`.
    pub fn status_changed(&self, change: &str, by: &str) {
        self.status_changes.with_label_values(&[change, by]).inc();
    }

    pub fn actor_restarted(&self) {
        self.actor_restarts.inc();
    }

    pub fn backlog_batch_moved(&self, kind: &str) {
        self.backlog_move_batches.with_label_values(&[kind]).inc();
    }

    /// Counts an attempt in flight until the returned guard is dropped
    /// (when it ends, or when its actor drops it on a restart).
    pub fn attempt_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub fn set_live_actors(&self, count: usize) {
        self.live_actors
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Whether the gauges read from the database are to be read again now
    /// (at most every [`STORED_COUNTS_EVERY`]); a `true` counts as a read.
    pub fn stored_counts_due(&self) -> bool {
        let mut read = self
            .stored_counts_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = read.is_none_or(|at| at.elapsed() >= STORED_COUNTS_EVERY);
        if due {
            *read = Some(Instant::now());
        }
        due
    }

    /// The gauges read from the database.
    pub fn set_stored(&self, counts: &StoredCounts) {
        for (state, count) in &counts.deliveries_by_state {
            self.deliveries_stored
                .with_label_values(&[state])
                .set(*count);
        }
        for (status, count) in &counts.endpoints_by_status {
            self.endpoints_by_status
                .with_label_values(&[status])
                .set(*count);
        }
        for (state, count) in &counts.endpoints_by_breaker {
            self.endpoints_by_breaker
                .with_label_values(&[state])
                .set(*count);
        }
    }

    /// Label values in registration order: tenant, endpoint (when asked
    /// for and the metric has it), then the metric's own.
    fn values<'a>(
        &self,
        tenant: &'a str,
        endpoint: &'a str,
        own: &[&'a str],
        has_endpoint: bool,
    ) -> Vec<&'a str> {
        let mut values = Vec::with_capacity(own.len() + 2);
        if self.labels.per_tenant {
            values.push(tenant);
        }
        if self.labels.per_endpoint && has_endpoint {
            values.push(endpoint);
        }
        values.extend_from_slice(own);
        values
    }
}

/// Waiting deliveries by state, endpoints by status and by breaker state,
/// as counted in the database. Every state the service knows is listed,
/// at zero when none is stored, so that a gauge falls back to zero instead
/// of keeping its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredCounts {
    pub deliveries_by_state: Vec<(String, i64)>,
    pub endpoints_by_status: Vec<(String, i64)>,
    pub endpoints_by_breaker: Vec<(String, i64)>,
}

/// An attempt under way, for the in-flight gauge.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An attempt as the metrics see it.
pub struct RecordedAttempt<'a> {
    pub tenant: &'a str,
    pub endpoint: &'a str,
    pub status: Option<u16>,
    pub error_kind: Option<&'static str>,
    pub duration_ms: i64,
    /// `succeeded` or `failed` when the attempt ended its delivery.
    pub finished: Option<&'static str>,
    pub published_at_ms: Option<i64>,
    pub ended_at_ms: i64,
}

/// `2xx` to `5xx`, `other` for a status outside them, `none` without one.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "none",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
    }
}

/// Why a publish was refused, from its status: a short fixed list.
pub fn refusal_reason(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        503 => "unavailable",
        500..=599 => "error",
        _ => "other",
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let metric = IntCounter::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let metric = IntGauge::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, prometheus::Error> {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    let metric = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(status: Option<u16>, finished: Option<&'static str>) -> RecordedAttempt<'a> {
        RecordedAttempt {
            tenant: "acme",
            endpoint: "ep_1",
            status,
            error_kind: None,
            duration_ms: 12,
            finished,
            published_at_ms: Some(1_000),
            ended_at_ms: 1_250,
        }
    }

    #[test]
    fn status_classes_and_reasons_are_short_fixed_lists() {
        assert_eq!(status_class(None), "none");
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(Some(99)), "other");
        assert_eq!(refusal_reason(422), "invalid");
        assert_eq!(refusal_reason(401), "unauthorized");
        assert_eq!(refusal_reason(413), "too_large");
        assert_eq!(refusal_reason(504), "error");
    }

    #[test]
    fn without_optional_labels_no_endpoint_or_tenant_appears() {
        let metrics = Metrics::new(MetricLabels::default()).expect("metrics");
        metrics.attempt_recorded(&attempt(Some(200), Some("succeeded")));
        metrics.attempt_recorded(&attempt(Some(500), None));
        metrics.publish_answered("acme", 202, 0.003);
        metrics.publish_answered("acme", 401, 0.001);
        let text = metrics.render().expect("render");
        assert!(
            text.contains("hookrelay_attempts_total{error_kind=\"none\",status_class=\"2xx\"} 1")
        );
        assert!(
            text.contains("hookrelay_attempts_total{error_kind=\"none\",status_class=\"5xx\"} 1")
        );
        assert!(text.contains("hookrelay_deliveries_finished_total{outcome=\"succeeded\"} 1"));
        assert!(text.contains("hookrelay_events_accepted_total 1"));
        assert!(text.contains("hookrelay_events_refused_total{reason=\"unauthorized\"} 1"));
        assert!(text.contains("hookrelay_publish_to_delivery_seconds_sum 0.25"));
        assert!(!text.contains("ep_1"), "{text}");
        assert!(!text.contains("acme"), "{text}");
    }

    #[test]
    fn endpoint_and_tenant_labels_when_asked_for() {
        let labels = MetricLabels {
            per_endpoint: true,
            per_tenant: true,
        };
        let metrics = Metrics::new(labels).expect("metrics");
        metrics.attempt_recorded(&attempt(Some(200), Some("succeeded")));
        metrics.publish_answered("acme", 202, 0.003);
        let text = metrics.render().expect("render");
        assert!(text.contains("hookrelay_attempts_total{endpoint=\"ep_1\",error_kind=\"none\",status_class=\"2xx\",tenant=\"acme\"} 1"), "{text}");
        assert!(
            text.contains("hookrelay_events_accepted_total{tenant=\"acme\"} 1"),
            "{text}"
        );
    }
}
