//! An endpoint's delivery configuration, as the router and its actor use it.

use crate::core::health::limits::HealthLimits;
use crate::core::input::matching::{subscribes_to, EventTypePattern};
use crate::core::secrets::signature_scheme::Signing;
use std::time::Duration;

pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
pub const MAX_TIMEOUT_SECONDS: u32 = 300;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
pub const MAX_MAX_IN_FLIGHT: u32 = 256;
/// Every endpoint of a tenant has an actor and a place in each fan-out.
pub const MAX_ENDPOINTS_PER_TENANT: i64 = 1000;

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub method: HttpMethod,
    pub patterns: Vec<EventTypePattern>,
    pub headers: Vec<(String, String)>,
    /// How its deliveries are signed, or why they cannot be (a secret
    /// encrypted under a key this instance lacks): each attempt then fails
    /// without sending anything.
    pub signing: Result<Signing, String>,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub retry_schedule: Vec<u32>,
    /// `false`: a 4xx other than 408 and 429 fails the delivery at once, as
    /// receivers that answer 4xx for "never send this again" expect.
    pub retry_client_errors: bool,
    /// Attempts a second at most (`None`: no limit).
    pub rate_limit: Option<u32>,
    /// Strict event order: one delivery at a time, and one waiting for its
    /// retry holds back every later one.
    pub ordered: bool,
    /// `false` while disabled: its deliveries are held, not attempted.
    pub active: bool,
    pub limits: HealthLimits,
    /// `false` for the operator's alert endpoint: alerting about alerts
    /// would loop, and disabling it would silence every alert with nobody
    /// told. Its breaker and retries still apply.
    pub raises_alerts: bool,
    /// `true` for the operator's alert endpoint: its URL is the operator's
    /// configuration, so the target policy (no private addresses unless
    /// allowed) does not apply to it.
    pub trusted_target: bool,
    /// When the configuration was last changed (the row's `updated_at`,
    /// raised by every change): how an instance tells that a configuration
    /// changed through another one is not the one it runs.
    pub revision: i64,
}

/// The HTTP method deliveries are sent with. Receivers of in-house systems
/// sometimes take PUT or PATCH; nothing else carries a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }

    /// Case-insensitive, as HTTP clients spell methods either way.
    pub fn parse(value: &str) -> Result<HttpMethod, String> {
        [HttpMethod::Post, HttpMethod::Put, HttpMethod::Patch]
            .into_iter()
            .find(|method| method.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| "must be POST, PUT or PATCH".to_owned())
    }
}

impl EndpointConfig {
    /// Whether a new event of this type gets a delivery to this endpoint
    /// (held while the endpoint is disabled).
    pub fn subscribes(&self, event_type: &str) -> bool {
        subscribes_to(&self.patterns, event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_that_carry_a_body_are_accepted_in_any_case() {
        assert_eq!(HttpMethod::parse("put"), Ok(HttpMethod::Put));
        assert_eq!(HttpMethod::parse("PATCH"), Ok(HttpMethod::Patch));
        assert_eq!(HttpMethod::parse("Post"), Ok(HttpMethod::Post));
        assert!(HttpMethod::parse("GET").is_err());
        assert!(HttpMethod::parse("").is_err());
    }
}
