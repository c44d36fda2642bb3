//! Shared harness for the integration tests, one file a capability:
//!
//! - [`app`]: starting hookrelay in-process (`spawn_app`, `spawn_app_with`,
//!   `RestartableApp`) and the settings it runs with;
//! - [`clients`]: `TestApp`, the HTTP client of its API, `ApiResponse` and
//!   the problem-document assertions;
//! - [`values`]: reading API values (list pages, attempts, timestamps);
//! - [`health`]: the health, alert, disable and enable routes, and the
//!   tenant-and-endpoint set-up the endpoint-health scenarios share;
//! - [`receivers`]: a scriptable webhook receiver on 127.0.0.1 and a
//!   Standard Webhooks signature verifier written from the specification;
//! - [`databases`]: throw-away SQLite and PostgreSQL databases and SQL run
//!   on them beside the application;
//! - [`service`]: the real binary as a child process (`Service`), and a
//!   publish racing its end (`try_publish`);
//! - [`waiting`]: waiting for a condition with a deadline, and showing that
//!   something does not happen during a window;
//! - `backend_tests!` (below): one test per backend for each scenario.
//!
//! Everything is re-exported here, so a test names it `crate::common::X`.

/// Turns scenarios `async fn name(db: TestDb)` into one test per backend.
///
/// `backend_tests!(name)` generates the module `name` holding the tests
/// `sqlite` and `postgres`, reported as `name::sqlite` and `name::postgres`
/// (a declarative macro cannot glue identifiers into `name_sqlite` without
/// an extra crate; modules and functions live in different namespaces so the
/// module can share the scenario's name). The PostgreSQL test returns early
/// with a notice when no server is reachable, unless `CI` is set.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                super::$name(crate::common::TestDb::sqlite()).await;
            }

            #[actix_rt::test]
            async fn postgres() {
                if let Some(db) = crate::common::TestDb::postgres() {
                    super::$name(db).await;
                }
            }
        }
    )+};
}

mod app;
mod clients;
mod databases;
mod health;
mod receivers;
mod service;
mod values;
mod waiting;

pub use app::{
    spawn_app, spawn_app_with, spawn_app_with_acme_endpoint, try_build_app, RestartableApp,
    ADMIN_KEY, LOOPBACK_TARGETS,
};
pub use clients::{ApiResponse, TestApp};
pub use databases::TestDb;
pub use health::{
    circuit_is, circuit_state, id_of, last_failure_is, quiet, spawn_app_with_endpoint,
    spawn_app_with_failing_endpoint, with, TenantEndpoint,
};
pub use receivers::{
    operational_events, random_secret, refused_url, sign, verify_signature, wait_for_webhook_ids,
    wall_time, ReceivedRequest, Receiver,
};
pub use service::{spawn_piped, try_publish, Service};
pub use values::{attempts_of, data_of, millis_between, parse_time, to_bytes, unix_now};
pub use waiting::{assert_throughout, wait_until, wait_until_steady, DELIVERY_TIMEOUT};
