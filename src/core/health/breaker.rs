//! The circuit breaker of one endpoint.
//!
//! Times are milliseconds since the epoch, passed in by the caller, so every
//! transition is a plain function of its inputs.

use crate::core::health::limits::HealthLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// No request goes out until `next_probe_at`.
    Open,
    /// One probe is in flight; its outcome closes or re-opens the circuit.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    pub fn parse(value: &str) -> Option<CircuitState> {
        match value {
            "closed" => Some(CircuitState::Closed),
            "open" => Some(CircuitState::Open),
            "half_open" => Some(CircuitState::HalfOpen),
            _ => None,
        }
    }
}

/// May an attempt start now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Send,
    /// Send exactly this one attempt as the probe.
    Probe,
    /// Nothing may be sent before this time.
    WaitUntil(i64),
    /// A probe is out; wait for its outcome.
    AwaitProbe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    pub state: CircuitState,
    pub opened_at: Option<i64>,
    pub next_probe_at: Option<i64>,
    /// The cool-down that follows the next opening: the base value while
    /// closed, doubled after every failed probe.
    pub cooldown_ms: i64,
}

impl Breaker {
    pub fn closed(limits: &HealthLimits) -> Breaker {
        Breaker {
            state: CircuitState::Closed,
            opened_at: None,
            next_probe_at: None,
            cooldown_ms: millis(limits.breaker_cooldown),
        }
    }

    /// A breaker read back from storage. A probe cannot survive a restart,
    /// so a stored half-open breaker is open and due for a new probe.
    pub fn restore(
        state: CircuitState,
        opened_at: Option<i64>,
        next_probe_at: Option<i64>,
        cooldown_ms: i64,
    ) -> Breaker {
        let state = match state {
            CircuitState::HalfOpen => CircuitState::Open,
            other => other,
        };
        Breaker {
            state,
            opened_at,
            next_probe_at: next_probe_at.or(opened_at),
            cooldown_ms,
        }
    }

    pub fn permit(&mut self, now: i64) -> Permit {
        match self.state {
            CircuitState::Closed => Permit::Send,
            CircuitState::HalfOpen => Permit::AwaitProbe,
            CircuitState::Open => match self.next_probe_at {
                Some(at) if at > now => Permit::WaitUntil(at),
                _ => {
                    self.state = CircuitState::HalfOpen;
                    Permit::Probe
                }
            },
        }
    }

    /// Any success closes the circuit and forgets the grown cool-down.
    pub fn after_success(&mut self, limits: &HealthLimits) {
        *self = Breaker::closed(limits);
    }

    /// `consecutive_failures` already counts this failure; `was_probe` says
    /// whether it was the half-open probe.
    pub fn after_failure(
        &mut self,
        consecutive_failures: u32,
        was_probe: bool,
        limits: &HealthLimits,
        now: i64,
    ) {
        let max = millis(limits.breaker_max_cooldown);
        match self.state {
            CircuitState::HalfOpen if was_probe => {
                self.cooldown_ms = self.cooldown_ms.saturating_mul(2).min(max);
                self.open(now);
            }
            CircuitState::Closed if consecutive_failures >= limits.breaker_failures => {
                self.cooldown_ms = self.cooldown_ms.clamp(1, max);
                self.open(now);
            }
            // Attempts that started before the circuit opened change nothing.
            _ => {}
        }
    }

    fn open(&mut self, now: i64) {
        self.state = CircuitState::Open;
        self.opened_at = Some(now);
        self.next_probe_at = Some(now.saturating_add(self.cooldown_ms));
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::health::limits::test_limits;

    fn opened(limits: &HealthLimits) -> Breaker {
        let mut breaker = Breaker::closed(limits);
        for failures in 1..=limits.breaker_failures {
            assert_eq!(breaker.permit(0), Permit::Send);
            breaker.after_failure(failures, false, limits, 1_000);
        }
        breaker
    }

    #[test]
    fn opens_after_the_configured_consecutive_failures() {
        let limits = test_limits();
        let mut breaker = Breaker::closed(&limits);
        breaker.after_failure(4, false, &limits, 1_000);
        assert_eq!(breaker.state, CircuitState::Closed);
        breaker.after_failure(5, false, &limits, 1_000);
        assert_eq!(breaker.state, CircuitState::Open);
        assert_eq!(breaker.opened_at, Some(1_000));
        assert_eq!(breaker.next_probe_at, Some(31_000));
    }

    #[test]
    fn sends_nothing_until_the_cooldown_then_exactly_one_probe() {
        let limits = test_limits();
        let mut breaker = opened(&limits);
        assert_eq!(breaker.permit(30_999), Permit::WaitUntil(31_000));
        assert_eq!(breaker.permit(31_000), Permit::Probe);
        assert_eq!(breaker.state, CircuitState::HalfOpen);
        assert_eq!(breaker.permit(31_001), Permit::AwaitProbe);
    }

    #[test]
    fn a_failed_probe_doubles_the_cooldown_up_to_the_maximum() {
        let limits = test_limits();
        let mut breaker = opened(&limits);
        let mut now = 31_000;
        let mut cooldowns = Vec::new();
        for failures in 6..12 {
            assert_eq!(breaker.permit(now), Permit::Probe);
            breaker.after_failure(failures, true, &limits, now);
            let next = breaker.next_probe_at.unwrap();
            cooldowns.push((next - now) / 1000);
            now = next;
        }
        assert_eq!(cooldowns, vec![60, 120, 240, 480, 600, 600]);
    }

    #[test]
    fn a_successful_probe_closes_and_resets_the_cooldown() {
        let limits = test_limits();
        let mut breaker = opened(&limits);
        assert_eq!(breaker.permit(31_000), Permit::Probe);
        breaker.after_failure(6, true, &limits, 31_000);
        assert_eq!(breaker.permit(91_000), Permit::Probe);
        breaker.after_success(&limits);
        assert_eq!(breaker, Breaker::closed(&limits));
        assert_eq!(breaker.permit(91_001), Permit::Send);
    }

    #[test]
    fn late_failures_of_earlier_attempts_do_not_extend_an_open_circuit() {
        let limits = test_limits();
        let mut breaker = opened(&limits);
        let before = breaker.clone();
        breaker.after_failure(9, false, &limits, 20_000);
        assert_eq!(breaker, before);
    }

    #[test]
    fn a_restored_half_open_breaker_probes_again() {
        let mut breaker = Breaker::restore(CircuitState::HalfOpen, Some(1), Some(5), 30_000);
        assert_eq!(breaker.state, CircuitState::Open);
        assert_eq!(breaker.permit(6), Permit::Probe);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
        ] {
            assert_eq!(CircuitState::parse(state.as_str()), Some(state));
        }
    }
}
