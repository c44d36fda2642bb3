//! Pure logic: no I/O, no clocks read, no randomness drawn. Everything here is a
//! function of its arguments and is unit-tested next to its code.

pub mod delivery;
pub mod endpoint;
pub mod endpoint_machine;
pub mod health;
pub mod input;
pub mod ownership;
pub mod secrets;
pub mod tenancy;
