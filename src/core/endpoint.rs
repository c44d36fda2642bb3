//! An endpoint's delivery configuration, as the router and its actor use it.

use super::limits::HealthLimits;
use super::matching::{subscribes_to, EventTypePattern};
use super::signature_scheme::Signing;
use std::time::Duration;

pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
pub const MAX_TIMEOUT_SECONDS: u32 = 300;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
pub const MAX_MAX_IN_FLIGHT: u32 = 256;

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub patterns: Vec<EventTypePattern>,
    pub headers: Vec<(String, String)>,
    /// How its deliveries are signed, or why they cannot be (a secret
    /// encrypted under a key this instance lacks): each attempt then fails
    /// without sending anything.
    pub signing: Result<Signing, String>,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub retry_schedule: Vec<u32>,
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
}

impl EndpointConfig {
    /// Whether a new event of this type gets a delivery to this endpoint
    /// (held while the endpoint is disabled).
    pub fn subscribes(&self, event_type: &str) -> bool {
        subscribes_to(&self.patterns, event_type)
    }
}
