//! `syros`: the Syros coordination server.
// `volo_grpc::Status` is large, and it is the error type Volo's service traits require.
#![allow(clippy::result_large_err)]

mod cli;
mod config;
mod grpc;
mod http;
mod security;
mod server;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Syros: distributed locks with fencing tokens, a tagged cache, an event store and sagas.
///
/// `syros serve` runs the server: every option can also be set through the environment variable
/// shown, or in `syros.toml`. With no configuration at all it keeps its data in ./syros-data
/// (embedded SQLite) and listens on 127.0.0.1.
///
/// The other commands talk to a running server (--address, --token; see docs/cli.md): tables by
/// default, `--output json` for scripts. Exit status: 0 ok, 1 usage, 2 not found / not held,
/// 3 conflict, 4 unauthenticated / denied, 5 unavailable / timeout, 6 outcome unknown,
/// 7 other failure.
#[derive(Parser)]
#[command(
    name = "syros",
    version,
    after_help = "Examples:\n  \
        syros serve\n  \
        syros health --address 127.0.0.1:9090\n  \
        syros lock ls orders/\n  \
        syros events tail orders-42 -o json\n  \
        syros saga show <saga-id>"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (gRPC on GRPC_PORT, REST and GraphQL on REST_PORT, WebSocket on WS_PORT)
    /// until SIGINT or SIGTERM.
    Serve(config::ServeArgs),
    /// Manage API keys in the configured storage (the same DATABASE_URL / SYROS_DATA_DIR as
    /// `serve`): every replica sharing it sees the change within seconds.
    Apikey {
        #[command(subcommand)]
        action: ApiKeyAction,
        #[command(flatten)]
        storage: config::ServeArgs,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// What the key is for (e.g. the service using it).
        #[arg(long)]
        name: String,
        /// A role granted to the key (repeat for several): admin, writer, reader, worker or
        /// a role of syros.toml.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id (the part after `syk_`, as `apikey list` shows).
    Revoke { key_id: String },
}

/// Run an `apikey` command.
async fn api_key_command(action: ApiKeyAction, config: config::Config) -> anyhow::Result<()> {
    if config.storage.postgres_url.is_none() {
        if let Some(dir) = config.storage.embedded_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let store = syros_engine::Stores::open_api_keys(&config.storage).await?;
    let keys = syros_engine::ApiKeys::new(store);
    let operator = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    match action {
        ApiKeyAction::Create { name, roles } => {
            if let Some(unknown) = roles.iter().find(|r| !config.security.roles.contains(r)) {
                anyhow::bail!("unknown role {unknown:?} (built-in: admin, writer, reader, worker)");
            }
            let (key, secret) = keys.create(&name, &roles).await?;
            security::audit(&format!("cli:{operator}"), "apikey_create", &key.key_id);
            eprintln!(
                "API key {} ({}) created with roles {}; it is shown only once:",
                key.key_id,
                key.name,
                key.roles.join(", ")
            );
            println!("{secret}");
        }
        ApiKeyAction::List => {
            println!("{:<18} {:<10} {:<24} NAME", "KEY ID", "STATE", "ROLES");
            for key in keys.list().await? {
                let state = if key.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<10} {:<24} {}",
                    key.key_id,
                    state,
                    key.roles.join(","),
                    key.name
                );
            }
        }
        ApiKeyAction::Revoke { key_id } => {
            keys.revoke(&key_id).await?;
            security::audit(&format!("cli:{operator}"), "apikey_revoke", &key_id);
            eprintln!("API key {key_id} revoked");
        }
    }
    Ok(())
}

/// Logs to stderr and, when the `OTEL_*` variables ask for it, traces over OTLP
/// (docs/tracing.md). Must run before the async runtime starts.
fn init_logging(config: &config::Config) -> anyhow::Result<telemetry::Telemetry> {
    telemetry::init(&config.log_level, config.json_logs)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout with status 0; usage errors exit 1 (docs/cli.md).
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(cli::exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Client(command) => cli::run(command),
        Command::Serve(args) => {
            let (config, telemetry) = match config::Config::resolve(args)
                .and_then(|c| init_logging(&c).map(|t| (c, t)))
            {
                Ok(resolved) => resolved,
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
            let code = match runtime.block_on(server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("syros: {err:#}");
                    ExitCode::FAILURE
                }
            };
            drop(runtime);
            // Outside the runtime: the exporter's last flush blocks.
            telemetry.shutdown();
            code
        }
        Command::Apikey { action, storage } => {
            let config = match config::Config::resolve(storage) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("syros: {err:#}");
                    return ExitCode::from(2);
                }
            };
            // Audit lines go to stderr like the server's log.
            let telemetry = init_logging(&config).ok();
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(api_key_command(action, config)));
            if let Some(telemetry) = telemetry {
                telemetry.shutdown();
            }
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("syros: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
