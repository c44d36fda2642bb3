//! hookrelay: durable, signed webhook delivery.
//!
//! Request → [`api`] → [`store`] (durable) + [`actors::router`] → one
//! [`actors::endpoint`] actor per endpoint → [`core`] decisions → [`sender`].

pub mod actors;
pub mod api;
pub mod config;
pub mod core;
pub mod ids;
pub mod metrics;
pub mod sender;
pub mod startup;
pub mod store;
pub mod time;
pub mod ui;
