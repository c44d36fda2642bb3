//! Wiring: storage, writer, actors and the HTTP server.
//!
//! By concern: `settings` (each setting checked, and turned into what a
//! part takes), `admin_key` (the admin key at start, and its rotation) and
//! `shutdown` (serving until a signal, then stopping within the grace
//! period).

mod admin_key;
mod settings;
mod shutdown;

use crate::actors::retention::RetentionSweep;
use crate::actors::router::{Catalog, Ownership, Router, RouterSettings};
use crate::api::{self, auth::Keys, publish_rules::PublishRules, AppState};
use crate::config::Settings;
use crate::core::endpoint::EndpointConfig;
use crate::core::health::limits::HealthLimits;
use crate::core::input::target_policy::TargetPolicy;
use crate::core::secrets::secret_box::SecretBox;
use crate::core::tenancy::tenant_caps::TenantCaps;
use crate::metrics::{MetricLabels, Metrics};
use crate::sender;
use crate::store::endpoints::OPERATOR_ENDPOINT;
use crate::store::sqlite_claim::{self, SqliteClaim};
use crate::store::tenants::SYSTEM_TENANT;
use crate::store::writer::{Writer, WriterLanes};
use crate::store::{endpoints, leases, Store, StoreError};
use crate::time::now_ms;
use crate::ui;
use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use admin_key::{admin_key_at_start, check_admin_key};
use settings::{
    actor_settings, alert_target, attempt_budget, health_limits, instance_id, retention_settings,
    secret_box,
};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use admin_key::rotate_admin_key;

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
    /// `/metrics` without a key, on `HOOKRELAY_METRICS_LISTEN`, and its port.
    metrics_server: Option<(Server, u16)>,
    router: Addr<Router>,
    /// Kept so the sweep lives as long as the application.
    _retention: Addr<RetentionSweep>,
    /// Closed at shutdown, after the drain; dropped with the application
    /// otherwise. Either way they end with it.
    writer_lanes: WriterLanes,
    generated_admin_key: Option<String>,
    shutdown_grace: Duration,
    /// Held until the application ends: no other instance serves its
    /// SQLite file meanwhile.
    sqlite_claim: Option<SqliteClaim>,
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
        let instance_id = instance_id(&settings)?;
        log::info!("hookrelay instance {instance_id}");
        let url = settings.database_url.clone();
        let holder = format!(
            "instance {instance_id}, pid {}, serving since {}",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let (sqlite_claim, store) = tokio::task::spawn_blocking(move || {
            let claim = sqlite_claim::claim(&url, &holder)?;
            Store::open(&url).map(|store| (claim, store))
        })
        .await
        .map_err(|e| StoreError::Blocking(e.to_string()))??;
        let mut ownership = Ownership {
            instance: instance_id.as_str().into(),
            key_check: secrets.key_check(),
            lease_ttl: Duration::from_secs(settings.lease_seconds),
            leading: Arc::new(AtomicBool::new(false)),
        };
        let joining = ownership.clone();
        let leading = store
            .run(move |db| {
                let ttl = i64::try_from(joining.lease_ttl.as_millis()).unwrap_or(i64::MAX);
                leases::join(db, &joining.instance, &joining.key_check, ttl)
            })
            .await?;
        ownership.leading = Arc::new(AtomicBool::new(leading));
        let generated_admin_key = admin_key_at_start(&store, &settings).await?;
        let operator_secrets = secrets.clone();
        let ttl = i64::try_from(ownership.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        let me = ownership.instance.to_string();
        store
            .run(move |db| {
                let target = alert_target
                    .as_ref()
                    .map(|(url, secret)| (url.as_str(), secret));
                // An instance started without an alert URL beside live ones
                // that have it must not remove their alert endpoint.
                let others = leases::live_instances(db, ttl)?.iter().any(|id| *id != me);
                if target.is_none() && others {
                    if endpoints::find(db, SYSTEM_TENANT, OPERATOR_ENDPOINT)?.is_some() {
                        log::warn!("HOOKRELAY_ALERT_URL is not set here but other instances run with it: their alert endpoint is left as it is; give every instance the same alert settings");
                    }
                    return Ok(());
                }
                endpoints::sync_operator_endpoint(db, target, &operator_secrets, now_ms())
            })
            .await?;
        let metrics = Metrics::new(MetricLabels {
            per_endpoint: settings.metrics_per_endpoint,
            per_tenant: settings.metrics_per_tenant,
        })
        .map_err(|error| StartupError::Settings(format!("metrics: {error}")))?;
        let (writer, writer_lanes) = Writer::start(
            &store,
            usize::from(settings.writer_connections),
            metrics.writer.clone(),
        )?;
        let configs = endpoint_configs(&store, &writer, &health_defaults, &secrets).await?;
        let budget = attempt_budget(&settings)?;
        let tenant_caps = TenantCaps::new(
            settings.tenant_max_timeout_seconds,
            settings.tenant_max_in_flight_total,
        )
        .map_err(|error| StartupError::Settings(error.to_string()))?;
        let actor_settings = actor_settings(&settings, budget)?;
        let retention = RetentionSweep::new(
            retention,
            sweep_pace,
            writer.clone(),
            Arc::clone(&ownership.leading),
        )
        .start();
        let transport = sender::Transport::new(
            settings.allow_targets.clone(),
            budget,
            &instance_id,
            settings.send_instance_header,
        )?;
        let router = Router::new(
            writer.clone(),
            store.clone(),
            transport.clone(),
            configs,
            RouterSettings {
                actors: actor_settings,
                rescue_interval: Duration::from_secs(settings.rescue_interval_seconds),
                ownership,
                catalog: Catalog {
                    defaults: health_defaults.clone(),
                    secrets: secrets.clone(),
                },
                metrics: Arc::clone(&metrics),
            },
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
            metrics,
        });
        actix_rt::spawn(api::cache_checks::keep_current(state.clone()));
        let shutdown_grace = Duration::from_secs(settings.shutdown_grace_seconds);
        let max_payload_bytes = settings.max_payload_bytes;
        let metrics_server = match &settings.metrics_listen {
            Some(address) => Some(metrics_server(address, state.clone())?),
            None => None,
        };
        let dashboard = web::Data::new(ui::Dashboard::new(
            ui::ApiClient::new(own_api_base(&listener)?).map_err(StartupError::Settings)?,
            state.clone(),
        ));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(dashboard.clone())
                // Every handler reads its body as `web::Bytes`, which this
                // bounds: a larger body is a 413 before any handler runs.
                .app_data(web::PayloadConfig::new(max_payload_bytes))
                .wrap(api::problem_errors())
                .wrap(from_fn(api::guard::slow_failed_authentication))
                .wrap(from_fn(api::guard::refuse_encoded_bodies))
                .wrap(from_fn(api::metrics::count_publishes))
                .configure(api::routes)
                .configure(ui::routes)
        })
        .listen(listener)
        .map_err(|e| StartupError::Listen(settings.listen.clone(), e))?
        .disable_signals()
        .shutdown_timeout(shutdown_grace.as_secs())
        .run();
        Ok(Application {
            port,
            server,
            metrics_server,
            router,
            _retention: retention,
            writer_lanes,
            generated_admin_key,
            shutdown_grace,
            sqlite_claim,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` without a key, when `HOOKRELAY_METRICS_LISTEN` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    /// The admin key generated at first start, when none was configured.
    pub fn admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }
}

/// Where the dashboard reaches the API: the listener's own address, on
/// loopback when it listens on every address.
fn own_api_base(listener: &TcpListener) -> Result<String, StartupError> {
    let mut address = listener
        .local_addr()
        .map_err(|e| StartupError::Settings(format!("the API's address: {e}")))?;
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        address.set_ip(loopback);
    }
    Ok(format!("http://{address}"))
}

/// A server of its own for `/metrics` without a key on `address`: only
/// that path, with problem+json for anything else.
fn metrics_server(
    address: &str,
    state: web::Data<AppState>,
) -> Result<(Server, u16), StartupError> {
    let listen_failed = |e| StartupError::Listen(address.to_owned(), e);
    let listener = TcpListener::bind(address).map_err(listen_failed)?;
    let port = listener.local_addr().map_err(listen_failed)?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(api::problem_errors())
            .route(
                "/metrics",
                web::get().to(api::metrics::scrape_unauthenticated),
            )
    })
    .workers(1)
    .listen(listener)
    .map_err(listen_failed)?
    .disable_signals()
    .shutdown_timeout(1)
    .run();
    Ok((server, port))
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
