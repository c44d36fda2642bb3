//! Settings: every flag can also come from the environment.

use crate::core::tenancy::tenant_caps::{DEFAULT_MAX_IN_FLIGHT_TOTAL, DEFAULT_MAX_TIMEOUT_SECONDS};
use crate::store::writer::MAX_LANES;
use clap::Args;
use ipnet::IpNet;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HOOKRELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// `sqlite://<file>` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// The admin API key, at least 24 characters; when set, stored admin
    /// keys are revoked. When unset and the database holds none, one is
    /// generated at first start and printed once.
    #[arg(long, env = "HOOKRELAY_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// This instance's name in logs and in its claim on a SQLite file: 1 to
    /// 64 letters, digits, `.`, `_`, `:` or `-`. Default: the host name and
    /// a random suffix.
    #[arg(long, env = "HOOKRELAY_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// How long an instance's lease on an endpoint lasts without renewal
    /// (renewed every third of it): when an instance dies, others take its
    /// endpoints over within this and a few seconds.
    #[arg(long, env = "HOOKRELAY_LEASE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(3..=600))]
    pub lease_seconds: u64,

    /// On SIGTERM/SIGINT, how long in-flight attempts may run before exit.
    #[arg(long, env = "HOOKRELAY_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Consecutive failed attempts that open an endpoint's circuit breaker.
    #[arg(long, env = "HOOKRELAY_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// First cool-down of an open breaker; it doubles on every failed probe.
    #[arg(long, env = "HOOKRELAY_BREAKER_COOLDOWN_SECONDS", default_value_t = 30)]
    pub breaker_cooldown_seconds: u64,

    /// The longest cool-down an open breaker waits before probing.
    #[arg(
        long,
        env = "HOOKRELAY_BREAKER_MAX_COOLDOWN_SECONDS",
        default_value_t = 600
    )]
    pub breaker_max_cooldown_seconds: u64,

    /// Consecutive-failure counts that raise an `endpoint.failing` alert.
    #[arg(long, env = "HOOKRELAY_ALERT_THRESHOLDS", value_delimiter = ',', default_values_t = [3, 5, 10])]
    pub alert_thresholds: Vec<u32>,

    /// Consecutive failures that, together with `disable_after_seconds` of
    /// failing, disable an endpoint.
    #[arg(long, env = "HOOKRELAY_DISABLE_AFTER_FAILURES", default_value_t = 10)]
    pub disable_after_failures: u32,

    /// How long an endpoint must have been failing before it is disabled
    /// (0: the failure count alone decides).
    #[arg(long, env = "HOOKRELAY_DISABLE_AFTER_SECONDS", default_value_t = 3600)]
    pub disable_after_seconds: u64,

    /// Operator URL that receives every alert of every tenant, signed.
    // Hidden: a chat webhook's URL is its credential.
    #[arg(long, env = "HOOKRELAY_ALERT_URL", hide_env_values = true)]
    pub alert_url: Option<String>,

    /// The shortest time between two `endpoint.failing` alerts of one
    /// threshold from one endpoint: later failure streaks (a flapping
    /// endpoint) repeat none within it, a streak's higher thresholds still
    /// alert; 0 lets every one through.
    #[arg(
        long,
        env = "HOOKRELAY_ALERT_MIN_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub alert_min_interval_seconds: u64,

    /// At most this many of an endpoint's due deliveries are held in
    /// memory; the rest wait on disk and are paged in, oldest due first.
    #[arg(long, env = "HOOKRELAY_QUEUE_WINDOW", default_value_t = 1000)]
    pub queue_window: usize,

    /// At most this many bytes of event bodies per endpoint in memory.
    #[arg(long, env = "HOOKRELAY_QUEUE_WINDOW_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub queue_window_bytes: usize,

    /// Deliveries moved per write, at most, when disabling or enabling an
    /// endpoint moves its backlog (pending to held, held to pending or
    /// cancelled): each batch is a transaction of its own, so other writes
    /// (publishes, attempt results) go in between, and batches shrink while
    /// they take longer than 50 ms (see `core::delivery::move_pace`).
    #[arg(long, env = "HOOKRELAY_MOVE_BATCH", default_value_t = DEFAULT_MOVE_BATCH)]
    pub move_batch: usize,

    /// How often the rescue sweep looks for deliveries no endpoint actor
    /// was told of (a commit whose reply was lost), and how long a pending
    /// delivery must have been due before it counts as such; also how soon
    /// a status change whose reply was lost is read back.
    #[arg(long, env = "HOOKRELAY_RESCUE_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub rescue_interval_seconds: u64,

    /// Largest request body the API accepts (an event with its payload
    /// included); a larger one is answered 413.
    #[arg(long, env = "HOOKRELAY_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: usize,

    /// `whsec_…` secret that signs alerts sent to the alert URL.
    #[arg(long, env = "HOOKRELAY_ALERT_SECRET", hide_env_values = true)]
    pub alert_secret: Option<String>,

    /// Comma-separated CIDRs that endpoints may be delivered to although
    /// they are not public (loopback, private, link-local…), e.g.
    /// `127.0.0.0/8,::1/128`. Everything non-public is refused otherwise.
    #[arg(long, env = "HOOKRELAY_ALLOW_TARGETS", value_delimiter = ',')]
    pub allow_targets: Vec<IpNet>,

    /// Send `hookrelay-instance: <HOOKRELAY_INSTANCE_ID>` with every attempt,
    /// to tell which instance sent a request (off by default: it shows the
    /// receiver a name of your infrastructure).
    #[arg(long, env = "HOOKRELAY_SEND_INSTANCE_HEADER")]
    pub send_instance_header: bool,

    /// Refuse endpoint URLs that are not `https://` (on create and update).
    #[arg(long, env = "HOOKRELAY_HTTPS_ONLY")]
    pub https_only: bool,

    /// Connections the writer commits on at once, on PostgreSQL (SQLite
    /// takes one writer at a time): one group's statements run while
    /// another's commit is flushed.
    #[arg(
        long,
        env = "HOOKRELAY_WRITER_CONNECTIONS",
        default_value_t = DEFAULT_WRITER_CONNECTIONS,
        value_parser = clap::value_parser!(u8).range(1..=MAX_LANES as i64),
    )]
    pub writer_connections: u8,

    /// Refuse (422) events whose type is not an active type of the
    /// tenant's catalog, for tenants that did not choose for themselves.
    #[arg(long, env = "HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES")]
    pub reject_unknown_event_types: bool,

    /// Days a succeeded delivery (and its attempts) is kept after its last
    /// change; 0 keeps them forever.
    #[arg(long, env = "HOOKRELAY_RETAIN_SUCCEEDED_DAYS", default_value_t = 30)]
    pub retain_succeeded_days: u32,

    /// Days a failed or cancelled delivery (and its attempts) is kept after
    /// its last change; 0 keeps them forever.
    #[arg(long, env = "HOOKRELAY_RETAIN_FAILED_DAYS", default_value_t = 90)]
    pub retain_failed_days: u32,

    /// Seconds from the end of one retention sweep to the start of the next.
    #[arg(
        long,
        env = "HOOKRELAY_RETENTION_INTERVAL_SECONDS",
        default_value_t = 300
    )]
    pub retention_interval_seconds: u64,
    /// Base64 of 32 random bytes (`openssl rand -base64 32`): endpoint
    /// secrets are stored encrypted with it. Keep it: secrets encrypted
    /// under a key cannot sign without it.
    #[arg(long, env = "HOOKRELAY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// HTTP attempts open at once, in all (default: a quarter of the file
    /// limit, at most 1024).
    #[arg(long, env = "HOOKRELAY_MAX_CONCURRENT_ATTEMPTS")]
    pub max_concurrent_attempts: Option<usize>,

    /// HTTP attempts one tenant may have open at once (default: a quarter
    /// of the total).
    #[arg(long, env = "HOOKRELAY_MAX_CONCURRENT_ATTEMPTS_PER_TENANT")]
    pub max_concurrent_attempts_per_tenant: Option<usize>,

    /// The longest `timeout_seconds` a tenant key may set on an endpoint
    /// (the admin key may set up to 300).
    #[arg(long, env = "HOOKRELAY_TENANT_MAX_TIMEOUT_SECONDS", default_value_t = DEFAULT_MAX_TIMEOUT_SECONDS)]
    pub tenant_max_timeout_seconds: u32,

    /// The largest sum of `max_in_flight` over a tenant's endpoints that a
    /// tenant key may reach (the admin key is not held to it).
    #[arg(long, env = "HOOKRELAY_TENANT_MAX_IN_FLIGHT_TOTAL", default_value_t = DEFAULT_MAX_IN_FLIGHT_TOTAL)]
    pub tenant_max_in_flight_total: u64,

    /// Serve `/metrics` without a key on this address too (for example
    /// `127.0.0.1:9464`), the usual way to scrape; on the API's address it
    /// takes the admin key.
    #[arg(long, env = "HOOKRELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Label the attempt and delivery metrics with their endpoint: one
    /// series per endpoint and label set, so only for a few hundred endpoints.
    #[arg(long, env = "HOOKRELAY_METRICS_PER_ENDPOINT")]
    pub metrics_per_endpoint: bool,

    /// Label the event, attempt and delivery metrics with their tenant.
    #[arg(long, env = "HOOKRELAY_METRICS_PER_TENANT")]
    pub metrics_per_tenant: bool,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://hookrelay.db";
/// A configured admin key shorter than this is refused at start.
pub const MIN_ADMIN_KEY_CHARS: usize = 24;
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;
pub const DEFAULT_WRITER_CONNECTIONS: u8 = 2;
/// About 100 ms of writing on PostgreSQL (a moved row costs ~0.1 ms: its
/// state is indexed, so every index of the row gets a new entry), 10 ms on
/// SQLite; the writer's other jobs wait at most that long.
pub const DEFAULT_MOVE_BATCH: usize = 1_000;

impl Settings {
    /// Defaults for embedding: any free port on loopback, no admin key.
    pub fn new(database_url: impl Into<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".to_owned(),
            database_url: database_url.into(),
            admin_key: None,
            instance_id: None,
            lease_seconds: 10,
            shutdown_grace_seconds: 10,
            breaker_failures: 5,
            breaker_cooldown_seconds: 30,
            breaker_max_cooldown_seconds: 600,
            alert_thresholds: vec![3, 5, 10],
            disable_after_failures: 10,
            disable_after_seconds: 3600,
            alert_url: None,
            alert_secret: None,
            alert_min_interval_seconds: 300,
            queue_window: 1000,
            queue_window_bytes: 16 * 1024 * 1024,
            move_batch: DEFAULT_MOVE_BATCH,
            rescue_interval_seconds: 30,
            allow_targets: Vec::new(),
            https_only: false,
            send_instance_header: false,
            secret_key: None,
            max_concurrent_attempts: None,
            max_concurrent_attempts_per_tenant: None,
            tenant_max_timeout_seconds: DEFAULT_MAX_TIMEOUT_SECONDS,
            tenant_max_in_flight_total: DEFAULT_MAX_IN_FLIGHT_TOTAL,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            writer_connections: DEFAULT_WRITER_CONNECTIONS,
            reject_unknown_event_types: false,
            retain_succeeded_days: 30,
            retain_failed_days: 90,
            retention_interval_seconds: 300,
            metrics_listen: None,
            metrics_per_endpoint: false,
            metrics_per_tenant: false,
        }
    }
}
