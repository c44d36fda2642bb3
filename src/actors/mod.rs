//! The imperative shell around delivery: actors move messages and call the
//! pure core; they never run a blocking call on their event loop.

pub mod alerts;
pub mod endpoint;
pub mod lease_clock;
pub mod retention;
pub mod router;
