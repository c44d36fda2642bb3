//! The JSON document every endpoint receives for an event.

use serde::Serialize;
use serde_json::Value;

/// Event types hookrelay emits itself; publishers may not use them.
pub const OPERATIONAL_PREFIX: &str = "hookrelay.";

/// The event an endpoint test sends (`POST …/endpoints/{id}/test`).
pub const TEST_EVENT_TYPE: &str = "hookrelay.ping";

/// Case-insensitive: receivers and people compare types loosely, so
/// `Hookrelay.endpoint.failing` must not pass for a publisher's own type.
pub fn is_operational(event_type: &str) -> bool {
    event_type
        .get(..OPERATIONAL_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(OPERATIONAL_PREFIX))
}

/// Serialized once at ingestion, stored, and sent byte for byte on every attempt.
#[derive(Serialize)]
pub struct Envelope<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub timestamp: &'a str,
    pub tenant_id: &'a str,
    pub data: &'a Value,
}

impl Envelope<'_> {
    pub fn to_body(&self) -> String {
        // A struct of strings and a JSON value always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::is_operational;

    #[test]
    fn the_reserved_prefix_ignores_case() {
        for reserved in ["hookrelay.x", "Hookrelay.endpoint.failing", "HOOKRELAY.a"] {
            assert!(is_operational(reserved), "{reserved}");
        }
        for own in ["hookrelay", "hookrelayx.a", "invoice.hookrelay.x", "é"] {
            assert!(!is_operational(own), "{own}");
        }
    }
}
