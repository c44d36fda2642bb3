//! An endpoint's health: the circuit breaker, the failure policy (streak,
//! alerts, auto-disable), their limits, and the figures of the health views.

pub mod breaker;
pub mod failure_policy;
pub mod limits;
pub mod views;
