//! Figures of the health views: success rates, latency percentiles and the
//! "worst first" order of a tenant's endpoints.

use crate::core::health::breaker::CircuitState;
use serde::Serialize;
use std::cmp::Ordering;
use utoipa::ToSchema;

/// Attempts of one endpoint over a time window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct WindowStats {
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// `None` when there was no attempt.
    pub success_rate: Option<f64>,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
}

impl WindowStats {
    /// `durations_ms` may be a sample (the newest attempts) of the window.
    pub fn new(attempts: u64, succeeded: u64, mut durations_ms: Vec<i64>) -> WindowStats {
        durations_ms.sort_unstable();
        WindowStats {
            attempts,
            succeeded,
            failed: attempts.saturating_sub(succeeded),
            success_rate: success_rate(attempts, succeeded),
            latency_p50_ms: percentile(&durations_ms, 50),
            latency_p95_ms: percentile(&durations_ms, 95),
        }
    }
}

pub fn success_rate(attempts: u64, succeeded: u64) -> Option<f64> {
    // Precision loss is irrelevant for a ratio shown to people.
    #[allow(clippy::cast_precision_loss)]
    (attempts > 0).then(|| succeeded as f64 / attempts as f64)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// What decides an endpoint's place in the tenant's health summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Severity {
    pub disabled: bool,
    pub circuit: CircuitState,
    pub consecutive_failures: u32,
    pub success_rate: Option<f64>,
}

/// Worst first: disabled, then an open circuit, a half-open one, more
/// consecutive failures, and a lower success rate (no traffic counts as healthy).
pub fn worst_first(a: &Severity, b: &Severity) -> Ordering {
    let circuit_rank = |s: &Severity| match s.circuit {
        CircuitState::Open => 0,
        CircuitState::HalfOpen => 1,
        CircuitState::Closed => 2,
    };
    b.disabled
        .cmp(&a.disabled)
        .then_with(|| circuit_rank(a).cmp(&circuit_rank(b)))
        .then_with(|| b.consecutive_failures.cmp(&a.consecutive_failures))
        .then_with(|| {
            let rate = |s: &Severity| s.success_rate.unwrap_or(1.0);
            rate(a).total_cmp(&rate(b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn window_counts_failures_and_rates() {
        let stats = WindowStats::new(4, 3, vec![40, 10, 30, 20]);
        assert_eq!(stats.failed, 1);
        assert_eq!(stats.success_rate, Some(0.75));
        assert_eq!(stats.latency_p50_ms, Some(20));
        assert_eq!(stats.latency_p95_ms, Some(40));
        assert_eq!(WindowStats::new(0, 0, vec![]).success_rate, None);
    }

    #[test]
    fn the_worst_endpoint_comes_first() {
        let healthy = Severity {
            disabled: false,
            circuit: CircuitState::Closed,
            consecutive_failures: 0,
            success_rate: Some(1.0),
        };
        let flaky = Severity {
            success_rate: Some(0.5),
            ..healthy.clone()
        };
        let failing = Severity {
            consecutive_failures: 3,
            ..healthy.clone()
        };
        let open = Severity {
            circuit: CircuitState::Open,
            ..failing.clone()
        };
        let disabled = Severity {
            disabled: true,
            ..healthy.clone()
        };
        let mut all = vec![
            healthy.clone(),
            flaky.clone(),
            open.clone(),
            disabled.clone(),
            failing.clone(),
        ];
        all.sort_by(worst_first);
        assert_eq!(all, vec![disabled, open, failing, flaky, healthy]);
    }
}
