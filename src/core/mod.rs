//! Pure logic: no I/O, no clocks read, no randomness drawn. Everything here is a
//! function of its arguments and is unit-tested next to its code.

pub mod attempt_budget;
pub mod auth_failures;
pub mod breaker;
pub mod captured_headers;
pub mod delivery;
pub mod domain;
pub mod endpoint;
pub mod endpoint_machine;
pub mod envelope;
pub mod event_catalog;
pub mod failure_policy;
pub mod health;
pub mod key_use;
pub mod limits;
pub mod matching;
pub mod move_pace;
pub mod negative_cache;
pub mod rate_limit;
pub mod recent_pages;
pub mod redact;
pub mod rescue;
pub mod retention;
pub mod retry;
pub mod secret_box;
pub mod signature_scheme;
pub mod signing;
pub mod target_policy;
pub mod tenant_caps;
pub mod text;
