//! `syros`: the Syros coordination server.
// `volo_grpc::Status` is large, and it is the error type Volo's service traits require.
#![allow(clippy::result_large_err)]

mod config;
mod grpc;
mod http;
mod security;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Syros: distributed locks with fencing tokens, a tagged cache, an event store and sagas.
///
/// Every option can also be set through the environment variable shown, or in `syros.toml`.
/// With no configuration at all, `syros serve` keeps its data in ./syros-data (embedded SQLite)
/// and listens on 127.0.0.1.
#[derive(Parser)]
#[command(name = "syros", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (gRPC on GRPC_PORT, REST and GraphQL on REST_PORT, WebSocket on WS_PORT)
    /// until SIGINT or SIGTERM.
    Serve(config::ServeArgs),
}

fn init_logging(config: &config::Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level).map_err(|e| {
        anyhow::anyhow!(
            "LOG_LEVEL {:?} is not a valid filter: {e}",
            config.log_level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config =
                match config::Config::resolve(args).and_then(|c| init_logging(&c).map(|_| c)) {
                    Ok(config) => config,
                    Err(err) => {
                        eprintln!("syros: {err:#}");
                        return ExitCode::from(2);
                    }
                };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    eprintln!("syros: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("syros: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
