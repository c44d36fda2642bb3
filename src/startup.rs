//! Wiring: storage, writer, actors and the HTTP server.

use crate::actors::router::{DrainAll, Router};
use crate::api::{self, auth::Keys, AppState};
use crate::config::Settings;
use crate::ids;
use crate::sender;
use crate::store::writer::Writer;
use crate::store::{endpoints, tenants, Store, StoreError};
use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::time::Duration;

/// Largest request body accepted (an event's payload included).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

pub struct Application {
    port: u16,
    server: Server,
    router: Addr<Router>,
    generated_admin_key: Option<String>,
    shutdown_grace: Duration,
}

impl Application {
    /// Opens (and migrates) the database, starts the writer and the actors,
    /// and binds the listener. Must run inside an actix system.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let url = settings.database_url.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&url))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))??;
        let generated_admin_key = match settings.admin_key {
            Some(_) => None,
            None => store.run(ensure_admin_key).await?,
        };
        let writer = Writer::start(&store)?;
        let rows = store.run(endpoints::all).await?;
        let configs = rows
            .iter()
            .map(|row| row.config())
            .collect::<Result<Vec<_>, _>>()?;
        let router = Router::new(writer, sender::build_client()?, configs).start();

        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?
            .port();
        let state = web::Data::new(AppState {
            keys: Keys::new(store.clone(), settings.admin_key.as_deref()),
            store,
            router: router.clone(),
        });
        let shutdown_grace = Duration::from_secs(settings.shutdown_grace_seconds);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap(api::problem_errors())
                .configure(api::routes)
        })
        .listen(listener)
        .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?
        .disable_signals()
        .shutdown_timeout(shutdown_grace.as_secs())
        .run();
        Ok(Application {
            port,
            server,
            router,
            generated_admin_key,
            shutdown_grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin key generated at first start, when none was configured.
    pub fn admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight
    /// attempts finish within the grace period, and returns. Whatever did
    /// not finish is still pending in the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        shutdown_signal().await?;
        log::info!("shutdown requested: no longer accepting requests");
        handle.stop(true).await;
        if self
            .router
            .send(DrainAll(self.shutdown_grace))
            .await
            .is_err()
        {
            log::warn!("shutdown: the router had already stopped");
        }
        server.await.map_err(std::io::Error::other)??;
        log::info!("shutdown complete");
        Ok(())
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted,
        _ = terminate.recv() => Ok(()),
    }
}

/// Creates an admin key when the database has none; returns it so it can be
/// shown once. Only its hash is stored.
fn ensure_admin_key(db: &mut crate::store::Db) -> Result<Option<String>, StoreError> {
    if tenants::has_admin_key(db)? {
        return Ok(None);
    }
    let key = ids::api_key("hra");
    tenants::add_admin_key(
        db,
        &ids::key_hash(&key),
        chrono::Utc::now().timestamp_millis(),
    )?;
    Ok(Some(key))
}
