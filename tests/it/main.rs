//! The integration suite, one test binary (it links once): every module
//! starts the real service, real receivers on 127.0.0.1 and real databases,
//! and runs each scenario on SQLite and on PostgreSQL.

#[macro_use]
mod common;

mod alerts;
mod api;
mod batch;
mod bounded;
mod crash;
mod dashboard;
mod database_outage;
mod delivery;
mod endpoint_options;
mod event_types;
mod hardening;
mod health_breaker;
mod health_disable;
mod health_enable;
mod health_isolation;
mod health_settings;
mod health_views;
mod hostile_receivers;
mod hygiene;
mod instances;
mod keys;
mod limits;
mod metrics;
mod moves;
mod openapi;
mod ordered;
mod outbound_budget;
mod ownership;
mod replay;
mod rescue;
mod retention;
mod retries;
mod shutdown;
mod signatures;
mod ssrf;
mod supervisor;
mod write_failures;
