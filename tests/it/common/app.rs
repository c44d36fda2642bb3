//! Starting the service under test: in-process on the test's actix system
//! ([`spawn_app`], [`spawn_app_with`]), in a thread of its own so that it can
//! be stopped and started again ([`RestartableApp`]), or only built to see
//! whether its settings are accepted ([`try_build_app`]).

use std::time::Duration;

use serde_json::json;

use super::clients::TestApp;
use super::databases::TestDb;
use super::waiting::wait_until;

/// Admin key given to every application the tests start.
pub const ADMIN_KEY: &str = "hr_test_admin_key_0123456789abcdef";

/// The allow-list every test application runs with: the receivers are on
/// loopback, which the target policy refuses by default.
pub const LOOPBACK_TARGETS: &str = "127.0.0.0/8,::1/128";

/// The settings [`spawn_app`] uses: `db`, a free port, [`ADMIN_KEY`],
/// deliveries to [`LOOPBACK_TARGETS`] allowed.
pub fn test_settings(database_url: &str) -> hookrelay::config::Settings {
    let mut settings = hookrelay::config::Settings::new(database_url);
    settings.listen = "127.0.0.1:0".to_string();
    settings.admin_key = Some(ADMIN_KEY.to_string());
    settings.instance_id = Some(instance_id_for(database_url));
    settings.allow_targets = LOOPBACK_TARGETS
        .split(',')
        .map(|net| net.parse().expect("LOOPBACK_TARGETS are CIDRs"))
        .collect();
    settings
}

/// The instance id every start on `database_url` takes unless a test sets
/// its own: a restart in a test is the same instance starting again, which
/// takes back its endpoints at once instead of waiting for its former
/// leases to expire. Instances side by side must be given ids of their own.
pub fn instance_id_for(database_url: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    database_url.hash(&mut hasher);
    format!("it-{:016x}", hasher.finish())
}

/// Builds `hookrelay::startup::Application` on `db` with [`ADMIN_KEY`] and
/// serves it on the current actix system.
pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Like [`spawn_app`], with `configure` applied to the settings first.
pub async fn spawn_app_with(
    db: TestDb,
    configure: impl FnOnce(&mut hookrelay::config::Settings),
) -> TestApp {
    let mut settings = test_settings(db.url());
    configure(&mut settings);
    let application = hookrelay::startup::Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("Application::build on {}: {e:?}", db.backend()));
    let port = application.port();
    actix_rt::spawn(application.run_until_stopped());
    let mut app = TestApp::connect(&format!("http://127.0.0.1:{port}"), ADMIN_KEY);
    app.db = Some(db);
    app
}

/// hookrelay on `db` with tenant `acme` and one endpoint of it on `url`:
/// where the plainest delivery scenarios start. Returns the application,
/// the tenant and its key.
pub async fn spawn_app_with_acme_endpoint(db: TestDb, url: String) -> (TestApp, String, String) {
    let app = spawn_app(db).await;
    let (tenant, key, _) = app.create_tenant_with_endpoint(json!({"url": url})).await;
    (app, tenant, key)
}

/// Builds an application with `configure` applied and returns the build
/// error (its `Debug` text), or `Ok(())` when the build succeeded (the
/// application is then dropped without serving).
pub async fn try_build_app(
    database_url: &str,
    configure: impl FnOnce(&mut hookrelay::config::Settings),
) -> Result<(), String> {
    let mut settings = test_settings(database_url);
    configure(&mut settings);
    match hookrelay::startup::Application::build(settings).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{e:?} / {e}")),
    }
}

/// A hookrelay running in-process in its own thread and actix system, so
/// that it can be stopped (everything it runs is dropped, as in a crash)
/// and another one started on the same database: a restart.
pub struct RestartableApp {
    pub app: TestApp,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RestartableApp {
    /// Builds and serves hookrelay on `database_url` in a new thread.
    pub async fn start(
        database_url: &str,
        configure: impl FnOnce(&mut hookrelay::config::Settings),
    ) -> RestartableApp {
        let mut settings = test_settings(database_url);
        configure(&mut settings);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runner = actix_rt::System::new();
            let built = runner.block_on(async move {
                match hookrelay::startup::Application::build(settings).await {
                    Ok(application) => {
                        let port = application.port();
                        actix_rt::spawn(application.run_until_stopped());
                        Ok((port, actix_rt::System::current()))
                    }
                    Err(e) => Err(format!("{e:?}")),
                }
            });
            let ok = built.is_ok();
            let _ = tx.send(built);
            if ok {
                let _ = runner.run();
            }
        });
        let (port, system) = rx
            .await
            .expect("the application thread answers")
            .unwrap_or_else(|e| panic!("Application::build on {database_url}: {e}"));
        RestartableApp {
            app: TestApp::connect(&format!("http://127.0.0.1:{port}"), ADMIN_KEY),
            system,
            thread: Some(thread),
        }
    }

    /// Stops the application's actix system (its HTTP server, actors and
    /// timers are dropped, nothing is drained) and waits for its thread.
    pub async fn stop(mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            wait_until(Duration::from_secs(30), || async { thread.is_finished() }).await;
            let _ = thread.join();
        }
        // Let connections of the old process that were still open close.
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for RestartableApp {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.system.stop();
        }
    }
}
