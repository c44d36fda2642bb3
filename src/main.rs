use clap::{Args, Parser, Subcommand};
use hookrelay::config::Settings;
use hookrelay::core::secrets::redact;
use hookrelay::startup::{rotate_admin_key, Application};
use hookrelay::store::{sqlite_claim, Store};
use std::io::Write;
use std::process::ExitCode;

/// Durable, signed webhook delivery.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery workers.
    // Boxed: the settings are far larger than the other commands.
    Serve(Box<Settings>),
    /// Apply pending database migrations and exit.
    Migrate(Database),
    /// Manage the admin key stored in the database (the one generated at
    /// first start when HOOKRELAY_ADMIN_KEY is unset).
    AdminKey {
        #[command(subcommand)]
        action: AdminKeyAction,
    },
}

#[derive(Subcommand)]
enum AdminKeyAction {
    /// Revoke every stored admin key, store a new one and print it once. A
    /// running service stops taking the old key within a second.
    Rotate(Database),
}

#[derive(Args)]
struct Database {
    /// `sqlite://<file>` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = hookrelay::config::DEFAULT_DATABASE_URL)]
    database_url: String,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (outcome, database_url) = match Cli::parse().command {
        Command::Serve(settings) => {
            let url = settings.database_url.clone();
            let system = actix_web::rt::System::new();
            (system.block_on(serve(*settings)), url)
        }
        Command::Migrate(Database { database_url }) => (migrate(&database_url), database_url),
        Command::AdminKey {
            action: AdminKeyAction::Rotate(Database { database_url }),
        } => (rotate(&database_url), database_url),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // A driver's message may quote the connection string.
            log::error!("{}", redact::database_password_in(&message, &database_url));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let host = settings
        .listen
        .rsplit_once(':')
        .map_or("127.0.0.1", |(host, _)| host)
        .to_owned();
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(key) = app.admin_key() {
        println!("admin key: {key}");
        println!("(shown once; only its hash is stored)");
    }
    println!("hookrelay listening on http://{host}:{}", app.port());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

/// Migrates the database, unless an instance is serving its SQLite file
/// (whose migrations it ran at start).
fn migrate(database_url: &str) -> Result<(), String> {
    let holder = format!("hookrelay migrate, pid {}", std::process::id());
    let _claim = sqlite_claim::claim(database_url, &holder).map_err(|e| e.to_string())?;
    Store::open(database_url).map_err(|e| e.to_string())?;
    println!("migrations applied");
    Ok(())
}

fn rotate(database_url: &str) -> Result<(), String> {
    // The service would ignore a stored key beside the configured one.
    if std::env::var_os("HOOKRELAY_ADMIN_KEY").is_some() {
        return Err("HOOKRELAY_ADMIN_KEY is set: that is the admin key; change it where it is configured and restart, or unset it to use a stored one".to_owned());
    }
    let (key, revoked) = rotate_admin_key(database_url).map_err(|e| e.to_string())?;
    println!("admin key: {key}");
    println!("(shown once; only its hash is stored; {revoked} previous admin key(s) revoked)");
    std::io::stdout().flush().map_err(|e| e.to_string())
}
