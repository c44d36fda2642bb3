//! Reading and writing the values the API exchanges: list pages, the
//! attempts of a delivery, RFC 3339 timestamps, JSON bodies.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The `data` array of a list answer (`what` names the list).
pub fn data_of(list: &Value, what: &str) -> Vec<Value> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{what} list has no data array: {list}"))
        .clone()
}

/// A JSON value as a request body.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

/// The attempts of a delivery, sorted by attempt number.
pub fn attempts_of(delivery: &Value) -> Vec<Value> {
    let mut attempts = delivery["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("delivery has no attempts array: {delivery}"))
        .clone();
    attempts.sort_by_key(|a| a["attempt"].as_i64().unwrap_or(i64::MAX));
    attempts
}

/// Seconds since the Unix epoch, as in `webhook-timestamp`.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Parses an RFC 3339 API timestamp (panics with `context` otherwise).
pub fn parse_time(value: &Value, context: &str) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{context}: expected an RFC 3339 string, got {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{context}: {text:?} is not RFC 3339: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Milliseconds from `a` to `b` (RFC 3339 API values).
pub fn millis_between(a: &Value, b: &Value, context: &str) -> i64 {
    (parse_time(b, context) - parse_time(a, context)).num_milliseconds()
}
