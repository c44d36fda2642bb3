//! Settings: every flag can also come from the environment.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HOOKRELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// `sqlite://<file>` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// The admin API key. When unset and the database holds none, one is
    /// generated at first start and printed once.
    #[arg(long, env = "HOOKRELAY_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,

    /// On SIGTERM/SIGINT, how long in-flight attempts may run before exit.
    #[arg(long, env = "HOOKRELAY_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://hookrelay.db";

impl Settings {
    /// Defaults for embedding: any free port on loopback, no admin key.
    pub fn new(database_url: impl Into<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:0".to_owned(),
            database_url: database_url.into(),
            admin_key: None,
            shutdown_grace_seconds: 10,
        }
    }
}
