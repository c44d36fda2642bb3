//! Wiring: storage, writer, actors and the HTTP server.

use crate::actors::endpoint::ActorSettings;
use crate::actors::retention::RetentionSweep;
use crate::actors::router::{DrainAll, ReleaseThreads, Router};
use crate::api::{self, auth::Keys, publish_rules::PublishRules, AppState};
use crate::config::{Settings, MIN_ADMIN_KEY_CHARS};
use crate::core::attempt_budget::AttemptBudget;
use crate::core::domain::parse_endpoint_url;
use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::WindowLimits;
use crate::core::limits::HealthLimits;
use crate::core::retention::{RetentionSettings, SweepPace};
use crate::core::secret_box::{SecretBox, SecretKey};
use crate::core::signing::Secret;
use crate::core::target_policy::TargetPolicy;
use crate::core::tenant_caps::TenantCaps;
use crate::ids;
use crate::sender;
use crate::store::models::ApiKeyRow;
use crate::store::writer::{wait_off_loop, Writer, WriterLanes};
use crate::store::{endpoints, tenants, Store, StoreError};
use crate::time::now_ms;
use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::time::Duration;

/// How long past the grace period shutdown may take: the time to answer
/// the last messages and log, never to wait for work.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("invalid setting: {0}")]
    Settings(String),
}

pub struct Application {
    port: u16,
    server: Server,
    router: Addr<Router>,
    /// Kept so the sweep lives as long as the application.
    _retention: Addr<RetentionSweep>,
    /// Closed at shutdown, after the drain; dropped with the application
    /// otherwise. Either way they end with it.
    writer_lanes: WriterLanes,
    generated_admin_key: Option<String>,
    shutdown_grace: Duration,
}

impl Application {
    /// Opens (and migrates) the database, starts the writer and the actors,
    /// and binds the listener. Must run inside an actix system.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        if settings.max_payload_bytes == 0 {
            return Err(StartupError::Settings(
                "HOOKRELAY_MAX_PAYLOAD_BYTES (--max-payload-bytes) must be at least 1".to_owned(),
            ));
        }
        check_admin_key(&settings)?;
        let health_defaults = health_limits(&settings)?;
        let (retention, sweep_pace) = retention_settings(&settings)?;
        let secrets = secret_box(&settings)?;
        let alert_target = alert_target(&settings)?;
        let url = settings.database_url.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&url))
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))??;
        let generated_admin_key = match settings.admin_key {
            Some(_) => {
                let revoked = store
                    .run(|db| tenants::replace_admin_keys(db, None))
                    .await?;
                if revoked > 0 {
                    log::info!("HOOKRELAY_ADMIN_KEY is the admin key: revoked {revoked} stored admin key(s)");
                }
                None
            }
            None => store.run(ensure_admin_key).await?,
        };
        let operator_secrets = secrets.clone();
        store
            .run(move |db| {
                let target = alert_target
                    .as_ref()
                    .map(|(url, secret)| (url.as_str(), secret));
                endpoints::sync_operator_endpoint(db, target, &operator_secrets, now_ms())
            })
            .await?;
        let (writer, writer_lanes) =
            Writer::start(&store, usize::from(settings.writer_connections))?;
        let configs = endpoint_configs(&store, &writer, &health_defaults, &secrets).await?;
        let budget = attempt_budget(&settings)?;
        let tenant_caps = TenantCaps::new(
            settings.tenant_max_timeout_seconds,
            settings.tenant_max_in_flight_total,
        )
        .map_err(|error| StartupError::Settings(error.to_string()))?;
        let actor_settings = actor_settings(&settings, budget)?;
        let retention = RetentionSweep::new(retention, sweep_pace, writer.clone()).start();
        let transport = sender::Transport::new(settings.allow_targets.clone(), budget)?;
        let router = Router::new(
            writer.clone(),
            store.clone(),
            transport.clone(),
            configs,
            actor_settings,
            Duration::from_secs(settings.rescue_interval_seconds),
        )
        .start();

        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?
            .port();
        let state = web::Data::new(AppState {
            keys: Keys::new(store.clone(), writer.clone(), settings.admin_key.as_deref()),
            publish_rules: PublishRules::new(store.clone(), settings.reject_unknown_event_types),
            secrets,
            store,
            router: router.clone(),
            writer,
            health_defaults,
            tenant_caps,
            targets: TargetPolicy {
                allow: settings.allow_targets.clone(),
                https_only: settings.https_only,
            },
            transport,
        });
        let shutdown_grace = Duration::from_secs(settings.shutdown_grace_seconds);
        let max_payload_bytes = settings.max_payload_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                // Every handler reads its body as `web::Bytes`, which this
                // bounds: a larger body is a 413 before any handler runs.
                .app_data(web::PayloadConfig::new(max_payload_bytes))
                .wrap(api::problem_errors())
                .wrap(from_fn(api::guard::slow_failed_authentication))
                .wrap(from_fn(api::guard::refuse_encoded_bodies))
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
            _retention: retention,
            writer_lanes,
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
    /// requests and attempts finish, lets the writer commit what they left
    /// queued, and returns once the threads that use the database have
    /// ended (a thread left running would still be closing its connections
    /// while the process exits). The whole shutdown has one deadline, the grace
    /// period (plus [`SHUTDOWN_MARGIN`]) from the signal, whatever state the
    /// server and the actors are in (an endpoint actor may be restarting, an
    /// attempt hanging): whatever did not finish is still pending in the
    /// database and is sent after the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        let writer_lanes = self.writer_lanes;
        shutdown_signal().await?;
        log::info!("shutdown requested: no longer accepting requests");
        let grace = self.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace + SHUTDOWN_MARGIN;
        let router = self.router;
        let draining = router.clone();
        let stopped = async move {
            // The server stops accepting at once and gives open requests the
            // grace period (its shutdown timeout); the actors stop taking
            // work and give attempts in flight the same period, at the same
            // time, so a slow client cannot eat into an attempt's time.
            let drained = async {
                if draining.send(DrainAll(grace)).await.is_err() {
                    log::warn!("shutdown: the router had already stopped");
                }
            };
            tokio::join!(handle.stop(true), drained);
            server.await.map_err(std::io::Error::other)?
        };
        // Whatever the above waits on (a restarting actor, a router busy
        // elsewhere), it gets no longer than this.
        match tokio::time::timeout_at(deadline, stopped).await {
            Ok(outcome) => outcome?,
            Err(_) => log::warn!(
                "shutdown: not finished after the grace period ({grace:?}); stopping anyway, unfinished deliveries stay pending"
            ),
        }
        // The endpoint actors end before the writer: what they queued as
        // they stopped is written too.
        if tokio::time::timeout_at(deadline, stop_endpoint_threads(&router))
            .await
            .is_err()
        {
            log::warn!(
                "shutdown: the endpoint threads had not ended after the grace period ({grace:?})"
            );
        }
        // What was queued meanwhile (an alert, a status change) is written
        // before the writer's lanes end; work that comes later is refused.
        if tokio::time::timeout_at(deadline, writer_lanes.close())
            .await
            .is_err()
        {
            log::warn!("shutdown: the writer had not written everything queued after the grace period ({grace:?})");
        }
        log::info!("shutdown complete");
        Ok(())
    }
}

/// Stops the endpoint actors' threads and waits for them to end, with the
/// actors, their blocking tasks and the connections they hold.
async fn stop_endpoint_threads(router: &Addr<Router>) {
    let Ok(arbiters) = router.send(ReleaseThreads).await else {
        log::warn!("shutdown: the router had already stopped");
        return;
    };
    for arbiter in &arbiters {
        arbiter.stop();
    }
    let joined = wait_off_loop(move || {
        arbiters
            .into_iter()
            .filter_map(|arbiter| arbiter.join().err())
            .count()
    })
    .await;
    match joined {
        Ok(0) => {}
        Ok(panicked) => log::error!("{panicked} endpoint threads had panicked"),
        Err(error) => log::error!("waiting for the endpoint threads failed: {error}"),
    }
}

/// Endpoints read per query at start-up.
const STARTUP_PAGE: usize = 1000;

/// Every endpoint's configuration, read a page at a time so that start-up
/// with many endpoints never holds all their rows (and, on PostgreSQL, the
/// whole result set) beside all their configurations. With a secret key
/// set, secrets still stored plain (written before it was) are sealed on
/// the way, so that none stays readable on disk after the first start.
async fn endpoint_configs(
    store: &Store,
    writer: &Writer,
    defaults: &HealthLimits,
    secrets: &SecretBox,
) -> Result<Vec<EndpointConfig>, StoreError> {
    let mut configs = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let from = after.take();
        let rows = store
            .run(move |db| endpoints::page_after(db, from.as_deref(), STARTUP_PAGE))
            .await?;
        for row in &rows {
            configs.push(row.config(defaults, secrets)?);
        }
        let plain: Vec<_> = rows
            .iter()
            .filter(|row| row.needs_sealing(secrets))
            .cloned()
            .collect();
        if !plain.is_empty() {
            log::info!(
                "encrypting the secrets and credential headers of {} endpoints stored in the clear",
                plain.len()
            );
            let secrets = secrets.clone();
            writer
                .call(move |db| endpoints::seal_secrets(db, &plain, &secrets))
                .await?;
        }
        match rows.last() {
            Some(last) if rows.len() == STARTUP_PAGE => after = Some(last.id.clone()),
            _ => return Ok(configs),
        }
    }
}

/// The global health limits, refused at start-up when contradictory or
/// past the bounds the API holds an endpoint's overrides to.
fn health_limits(settings: &Settings) -> Result<HealthLimits, StartupError> {
    let limits = HealthLimits {
        breaker_failures: settings.breaker_failures,
        breaker_cooldown: Duration::from_secs(settings.breaker_cooldown_seconds),
        breaker_max_cooldown: Duration::from_secs(settings.breaker_max_cooldown_seconds),
        alert_thresholds: settings.alert_thresholds.clone(),
        disable_after_failures: settings.disable_after_failures,
        disable_after: Duration::from_secs(settings.disable_after_seconds),
    };
    limits
        .check_bounds()
        .and_then(|()| limits.check())
        .map_err(|refused| {
            StartupError::Settings(format!(
                "HOOKRELAY_{} (--{}) {}",
                refused.field.to_ascii_uppercase(),
                refused.field.replace('_', "-"),
                refused.reason
            ))
        })?;
    Ok(limits)
}

/// How long finished deliveries are kept, and how often that is applied.
fn retention_settings(settings: &Settings) -> Result<(RetentionSettings, SweepPace), StartupError> {
    if settings.retention_interval_seconds == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_RETENTION_INTERVAL_SECONDS (--retention-interval-seconds) must be at least 1"
                .to_owned(),
        ));
    }
    Ok((
        RetentionSettings {
            succeeded_days: settings.retain_succeeded_days,
            failed_days: settings.retain_failed_days,
        },
        SweepPace::every(Duration::from_secs(settings.retention_interval_seconds)),
    ))
}

/// What every endpoint actor shares: its queue window, alert bound and
/// backlog batch.
fn actor_settings(
    settings: &Settings,
    attempt_budget: AttemptBudget,
) -> Result<ActorSettings, StartupError> {
    if settings.queue_window == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_QUEUE_WINDOW (--queue-window) must be at least 1".to_owned(),
        ));
    }
    if settings.queue_window_bytes == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_QUEUE_WINDOW_BYTES (--queue-window-bytes) must be at least 1".to_owned(),
        ));
    }
    if settings.move_batch == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_MOVE_BATCH (--move-batch) must be at least 1".to_owned(),
        ));
    }
    Ok(ActorSettings {
        window: WindowLimits {
            deliveries: settings.queue_window,
            bytes: settings.queue_window_bytes,
        },
        alert_min_interval: Duration::from_secs(settings.alert_min_interval_seconds),
        move_batch: settings.move_batch,
        attempt_budget,
    })
}

/// What reads and writes stored endpoint secrets: sealing with
/// `HOOKRELAY_SECRET_KEY` when it is set.
/// The attempt budget, sized under the process's file limit; both are
/// logged, so that an operator sees what bounds outbound work.
fn attempt_budget(settings: &Settings) -> Result<AttemptBudget, StartupError> {
    let file_limit = soft_file_limit();
    let budget = AttemptBudget::plan(
        settings.max_concurrent_attempts,
        settings.max_concurrent_attempts_per_tenant,
        file_limit,
    )
    .map_err(|error| StartupError::Settings(error.to_string()))?;
    let limit = file_limit.map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string());
    log::info!(
        "file limit (RLIMIT_NOFILE) {limit}: at most {} HTTP attempts at once, {} per tenant",
        budget.total,
        budget.per_tenant
    );
    Ok(budget)
}

/// The soft limit of open files, or `None` when unlimited or unreadable.
fn soft_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given a pointer to.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

fn secret_box(settings: &Settings) -> Result<SecretBox, StartupError> {
    let key = settings
        .secret_key
        .as_deref()
        .map(SecretKey::parse)
        .transpose()
        .map_err(|reason| {
            StartupError::Settings(format!("HOOKRELAY_SECRET_KEY (--secret-key) {reason}"))
        })?;
    Ok(SecretBox::new(key))
}

/// The operator's alert URL and the secret that signs what it receives.
fn alert_target(settings: &Settings) -> Result<Option<(String, Secret)>, StartupError> {
    let Some(url) = &settings.alert_url else {
        return Ok(None);
    };
    let url = parse_endpoint_url(url).map_err(|refused| {
        StartupError::Settings(format!("HOOKRELAY_ALERT_URL {}", refused.reason))
    })?;
    let secret = match &settings.alert_secret {
        Some(secret) => Secret::parse(secret)
            .map_err(|e| StartupError::Settings(format!("HOOKRELAY_ALERT_SECRET {e}")))?,
        None => {
            return Err(StartupError::Settings(
                "HOOKRELAY_ALERT_SECRET is required with HOOKRELAY_ALERT_URL (whsec_<base64>)"
                    .to_owned(),
            ))
        }
    };
    Ok(Some((url.to_string(), secret)))
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted,
        _ = terminate.recv() => Ok(()),
    }
}

/// A configured admin key must be long enough not to be guessed.
fn check_admin_key(settings: &Settings) -> Result<(), StartupError> {
    match &settings.admin_key {
        Some(key) if key.trim().chars().count() < MIN_ADMIN_KEY_CHARS => {
            Err(StartupError::Settings(format!(
                "HOOKRELAY_ADMIN_KEY (--admin-key) must be at least {MIN_ADMIN_KEY_CHARS} characters long (e.g. `openssl rand -hex 24`); unset it to have one generated"
            )))
        }
        _ => Ok(()),
    }
}

/// Opens (and migrates) the database at `database_url`, revokes every
/// stored admin key and stores a new one, returned with the number revoked.
pub fn rotate_admin_key(database_url: &str) -> Result<(String, usize), StoreError> {
    let store = Store::open(database_url)?;
    let key = ids::api_key("hra");
    let row = ApiKeyRow::new(&key, None, Some("rotated".to_owned()), now_ms());
    let revoked = tenants::replace_admin_keys(&mut store.get()?, Some(&row))?;
    Ok((key, revoked))
}

/// Creates an admin key when the database has none; returns it so it can be
/// shown once. Only its hash is stored.
fn ensure_admin_key(db: &mut crate::store::Db) -> Result<Option<String>, StoreError> {
    if tenants::has_admin_key(db)? {
        return Ok(None);
    }
    let key = ids::api_key("hra");
    let row = ApiKeyRow::new(
        &key,
        None,
        Some("generated at first start".to_owned()),
        now_ms(),
    );
    tenants::add_admin_key(db, &row)?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_admin_key_shorter_than_24_characters_stops_start_up() {
        let with_key = |key: &str| Settings {
            admin_key: Some(key.to_owned()),
            ..Settings::new("sqlite://unused.db")
        };
        let refused = check_admin_key(&with_key("admin-secret"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("HOOKRELAY_ADMIN_KEY") && refused.contains("24 characters"),
            "{refused:?}"
        );
        assert!(check_admin_key(&with_key(&" ".repeat(30))).is_err());
        assert!(check_admin_key(&with_key(&"k".repeat(23))).is_err());
        assert!(check_admin_key(&with_key(&"k".repeat(24))).is_ok());
        assert!(check_admin_key(&Settings::new("sqlite://unused.db")).is_ok());
    }

    #[test]
    fn a_health_setting_the_api_would_refuse_stops_start_up_naming_the_variable() {
        let defaults = Settings::new("sqlite://unused.db");
        assert!(health_limits(&defaults).is_ok());
        let cases = [
            (
                Settings {
                    breaker_failures: u32::MAX,
                    ..defaults.clone()
                },
                "HOOKRELAY_BREAKER_FAILURES",
            ),
            (
                Settings {
                    disable_after_failures: 1 << 31,
                    ..defaults.clone()
                },
                "HOOKRELAY_DISABLE_AFTER_FAILURES",
            ),
            (
                Settings {
                    alert_thresholds: vec![3, u32::MAX],
                    ..defaults.clone()
                },
                "HOOKRELAY_ALERT_THRESHOLDS",
            ),
            (
                Settings {
                    disable_after_seconds: u64::MAX,
                    ..defaults.clone()
                },
                "HOOKRELAY_DISABLE_AFTER_SECONDS",
            ),
        ];
        for (settings, variable) in cases {
            let refused = health_limits(&settings)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(refused.contains(variable), "{variable}: {refused:?}");
        }
    }
}
