//! What a tenant key may configure on its endpoints, below what the API
//! allows the admin (the operator).
//!
//! The attempt budget bounds what is open at run time; these caps bound what
//! a tenant can ask for, so that a tenant cannot configure its way into
//! holding sockets for minutes (`timeout_seconds`) or into an in-flight
//! total no budget share could ever serve (`max_in_flight` summed over its
//! endpoints). A tenant key may keep or lower a value the operator set past
//! a cap, never raise one past it.

use crate::core::endpoint::{DEFAULT_MAX_IN_FLIGHT, MAX_ENDPOINTS_PER_TENANT, MAX_TIMEOUT_SECONDS};
use crate::core::input::domain::FieldError;

/// Svix waits 15 s, GitHub 10 s, Stripe up to 30 s (our default): twice the
/// longest of them.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u32 = 60;

/// Every endpoint a tenant may have (1000) at the default `max_in_flight`
/// (16), 16,000: a tenant is never refused an endpoint with default
/// settings, only raising many endpoints' `max_in_flight` together.
pub const DEFAULT_MAX_IN_FLIGHT_TOTAL: u64 =
    MAX_ENDPOINTS_PER_TENANT.unsigned_abs() * DEFAULT_MAX_IN_FLIGHT as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCaps {
    /// The longest `timeout_seconds` a tenant key may set.
    pub max_timeout_seconds: u32,
    /// The largest sum of `max_in_flight` over a tenant's endpoints that a
    /// tenant key may reach.
    pub max_in_flight_total: u64,
}

impl Default for TenantCaps {
    fn default() -> Self {
        TenantCaps {
            max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
            max_in_flight_total: DEFAULT_MAX_IN_FLIGHT_TOTAL,
        }
    }
}

/// Why the configured caps cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsError {
    #[error(
        "HOOKRELAY_TENANT_MAX_TIMEOUT_SECONDS must be between 1 and {MAX_TIMEOUT_SECONDS}, got {0}"
    )]
    Timeout(u32),
    #[error("HOOKRELAY_TENANT_MAX_IN_FLIGHT_TOTAL must be at least 1")]
    InFlightZero,
}

impl TenantCaps {
    pub fn new(max_timeout_seconds: u32, max_in_flight_total: u64) -> Result<Self, CapsError> {
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&max_timeout_seconds) {
            return Err(CapsError::Timeout(max_timeout_seconds));
        }
        if max_in_flight_total == 0 {
            return Err(CapsError::InFlightZero);
        }
        Ok(TenantCaps {
            max_timeout_seconds,
            max_in_flight_total,
        })
    }

    /// A tenant key changes an endpoint's timeout from `before` (`None`: a
    /// new endpoint) to `after`.
    pub fn check_timeout(&self, before: Option<u32>, after: u32) -> Result<(), FieldError> {
        if after <= self.max_timeout_seconds || before.is_some_and(|before| after <= before) {
            return Ok(());
        }
        Err(FieldError::new(
            "timeout_seconds",
            format!(
                "may be at most {} with a tenant key (the operator's cap)",
                self.max_timeout_seconds
            ),
        ))
    }

    /// A tenant key changes an endpoint's `max_in_flight` from `before`
    /// (`None`: a new endpoint) to `after`, while the tenant's other
    /// endpoints sum to `others`.
    pub fn check_in_flight(
        &self,
        before: Option<u32>,
        after: u32,
        others: u64,
    ) -> Result<(), FieldError> {
        let total = others.saturating_add(u64::from(after));
        if total <= self.max_in_flight_total || before.is_some_and(|before| after <= before) {
            return Ok(());
        }
        Err(FieldError::new(
            "max_in_flight",
            format!(
                "would bring the tenant's endpoints to {total} attempts in flight in all \
                 (max_in_flight summed), over the cap of {} for a tenant key; lower it here \
                 or on other endpoints",
                self.max_in_flight_total
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> TenantCaps {
        TenantCaps::new(60, 100).expect("valid caps")
    }

    #[test]
    fn a_timeout_up_to_the_cap_is_allowed_and_one_over_it_is_refused() {
        assert_eq!(caps().check_timeout(None, 60), Ok(()));
        assert_eq!(caps().check_timeout(Some(30), 1), Ok(()));
        let refused = caps().check_timeout(None, 61).expect_err("over the cap");
        assert_eq!(refused.field, "timeout_seconds");
        assert!(refused.reason.contains("60"), "{}", refused.reason);
        assert!(caps().check_timeout(Some(30), 61).is_err());
    }

    #[test]
    fn a_timeout_the_operator_set_past_the_cap_may_be_kept_or_lowered_not_raised() {
        assert_eq!(caps().check_timeout(Some(300), 300), Ok(()));
        assert_eq!(caps().check_timeout(Some(300), 120), Ok(()));
        assert!(caps().check_timeout(Some(120), 121).is_err());
    }

    #[test]
    fn the_in_flight_total_may_reach_the_cap_not_pass_it() {
        assert_eq!(caps().check_in_flight(None, 16, 84), Ok(()));
        assert_eq!(caps().check_in_flight(Some(16), 20, 80), Ok(()));
        let refused = caps()
            .check_in_flight(None, 16, 85)
            .expect_err("over the cap");
        assert_eq!(refused.field, "max_in_flight");
        assert!(
            refused.reason.contains("101") && refused.reason.contains("100"),
            "the reason says the total and the cap: {}",
            refused.reason
        );
        assert!(caps().check_in_flight(Some(16), 21, 80).is_err());
    }

    #[test]
    fn a_tenant_over_its_in_flight_cap_may_keep_or_lower_an_endpoint() {
        // The operator raised other endpoints: 250 is already over 100.
        assert_eq!(caps().check_in_flight(Some(50), 50, 200), Ok(()));
        assert_eq!(caps().check_in_flight(Some(50), 10, 200), Ok(()));
        assert!(caps().check_in_flight(Some(50), 51, 200).is_err());
        assert!(caps().check_in_flight(None, 1, 200).is_err());
    }

    #[test]
    fn the_defaults_leave_a_thousand_default_endpoints_and_the_default_timeout_allowed() {
        let caps = TenantCaps::default();
        let others = 999 * u64::from(DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(
            caps.check_in_flight(None, DEFAULT_MAX_IN_FLIGHT, others),
            Ok(())
        );
        assert!(caps.check_in_flight(None, 17, others).is_err());
        assert_eq!(
            caps.check_timeout(None, crate::core::endpoint::DEFAULT_TIMEOUT_SECONDS),
            Ok(())
        );
        assert!(caps.check_timeout(None, MAX_TIMEOUT_SECONDS).is_err());
    }

    #[test]
    fn caps_outside_what_the_api_allows_are_refused() {
        assert_eq!(TenantCaps::new(0, 1), Err(CapsError::Timeout(0)));
        assert_eq!(TenantCaps::new(301, 1), Err(CapsError::Timeout(301)));
        assert_eq!(TenantCaps::new(300, 0), Err(CapsError::InFlightZero));
        assert!(TenantCaps::new(300, u64::MAX).is_ok());
    }
}
