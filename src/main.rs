use clap::{Parser, Subcommand};
use hookrelay::config::Settings;
use hookrelay::startup::Application;
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
    Migrate {
        #[arg(long, env = "DATABASE_URL", default_value = hookrelay::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let outcome = match Cli::parse().command {
        Command::Serve(settings) => actix_web::rt::System::new().block_on(serve(*settings)),
        Command::Migrate { database_url } => hookrelay::store::Store::open(&database_url)
            .map(|_| println!("migrations applied"))
            .map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
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
