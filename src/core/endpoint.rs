//! An endpoint's delivery configuration, as the router and its actor use it.

use super::matching::{subscribes_to, EventTypePattern};
use super::signing::Secret;
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
    pub secret: Secret,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub retry_schedule: Vec<u32>,
    pub active: bool,
}

impl EndpointConfig {
    /// Whether a new event of this type gets a delivery to this endpoint.
    pub fn wants(&self, event_type: &str) -> bool {
        self.active && subscribes_to(&self.patterns, event_type)
    }
}
