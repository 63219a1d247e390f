//! The operator commands of the `syros` binary (`lock`, `cache`, `events`, `saga`, `health`):
//! they talk to a running server through the client core (`syros-client`) and only translate,
//! arguments into client calls and results into tables or JSON. Retries, failover, timeouts and
//! request building are the client core's. docs/cli.md describes every command, the output
//! formats and the exit codes.

mod cache;
mod events;
pub mod exit;
mod locks;
mod output;
mod sagas;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use syros_client::{Client, ClientOptions, Error, RetryPolicy, TlsOptions};

pub use output::OutputFormat;
use output::Spinner;

/// How to reach the server; accepted by every client command, before or after its subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct Connection {
    /// Server gRPC address, host:port; repeat (or separate with commas) for failover.
    #[arg(
        long = "address",
        short = 'a',
        global = true,
        env = "SYROS_ADDRESS",
        value_delimiter = ',',
        default_value = "127.0.0.1:9090"
    )]
    pub addresses: Vec<String>,
    /// Bearer credential sent on every call: a JWT or an API key (`syk_...`).
    #[arg(long, global = true, env = "SYROS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Connect over TLS, checking the server's certificate against this CA (PEM).
    #[arg(long, global = true, env = "SYROS_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry [default: the host of the address].
    #[arg(
        long,
        global = true,
        env = "SYROS_TLS_SERVER_NAME",
        requires = "tls_ca_file"
    )]
    pub tls_server_name: Option<String>,
    /// Client certificate chain (PEM) for servers that require one (mTLS).
    #[arg(
        long,
        global = true,
        env = "SYROS_TLS_CLIENT_CERT",
        requires_all = ["tls_ca_file", "tls_client_key"]
    )]
    pub tls_client_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-client-cert.
    #[arg(
        long,
        global = true,
        env = "SYROS_TLS_CLIENT_KEY",
        requires = "tls_client_cert"
    )]
    pub tls_client_key: Option<PathBuf>,
    /// Output: `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, env = "SYROS_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Time budget of each call, retries and failover included (e.g. 500ms, 10s, 1m).
    #[arg(long, global = true, env = "SYROS_TIMEOUT", default_value = "10s")]
    pub timeout: humantime::Duration,
}

impl Connection {
    /// The client core's options for these flags.
    fn client_options(&self) -> ClientOptions {
        let timeout: Duration = self.timeout.into();
        let mut options = ClientOptions::new(self.addresses.iter().cloned());
        options.call_timeout = timeout;
        options.connect_timeout = timeout.min(options.connect_timeout);
        options.retry.deadline = Some(timeout);
        if let Some(token) = self.token.clone() {
            options.auth_token = Some(Arc::new(move || Some(token.clone())));
        }
        if let Some(ca_file) = &self.tls_ca_file {
            options.tls = Some(TlsOptions {
                ca_file: ca_file.clone(),
                server_name: self.tls_server_name.clone(),
                client_cert: self
                    .tls_client_cert
                    .clone()
                    .zip(self.tls_client_key.clone()),
            });
        }
        options
    }

    /// Connect (the client core checks that a server is serving, retrying within the budget).
    async fn connect(&self, options: ClientOptions) -> Result<Client, Error> {
        let spinner = Spinner::start(format!("connecting to {}", self.addresses.join(", ")));
        let client = Client::connect(options).await;
        spinner.stop();
        client
    }
}

/// The commands that talk to a running server.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Inspect held locks and force-release them.
    #[command(after_help = "Examples:\n  \
        syros lock ls orders/\n  \
        syros lock status orders/42\n  \
        syros lock release orders/42 --force")]
    Lock {
        #[command(subcommand)]
        command: locks::LockCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Read and write the tagged cache.
    #[command(after_help = "Examples:\n  \
        syros cache set user:42 '{\"name\":\"Ada\"}' --ttl 5m --tag users\n  \
        syros cache get user:42\n  \
        syros cache delete user:42\n  \
        syros cache invalidate-tag users")]
    Cache {
        #[command(subcommand)]
        command: cache::CacheCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Append to, read and follow event streams.
    #[command(after_help = "Examples:\n  \
        syros events append orders-42 --type OrderCreated --data '{\"total\":129.9}' \
        --expected-version no_stream\n  \
        syros events read orders-42 --from 0\n  \
        syros events tail orders-42 -o json")]
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Start, list, inspect and cancel sagas.
    #[command(after_help = "Examples:\n  \
        syros saga start order.json --wait\n  \
        syros saga ls --state running\n  \
        syros saga show 01a20a35-aac4-70bf-9c37-13521d32db72\n  \
        syros saga cancel 01a20a35-aac4-70bf-9c37-13521d32db72")]
    Saga {
        #[command(subcommand)]
        command: sagas::SagaCommand,
        #[command(flatten)]
        connection: Connection,
    },
    /// Check that a server is serving (gRPC health); exit 0 if it is, 5 if not.
    #[command(after_help = "Examples:\n  \
        syros health\n  \
        syros health --address 10.0.0.5:9090 --wait 60s   # until it serves, at most 60 s")]
    Health {
        /// Keep retrying until the server serves or this much time has passed.
        #[arg(long)]
        wait: Option<humantime::Duration>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// What `health` prints.
#[derive(Serialize)]
struct HealthOut {
    status: &'static str,
    address: String,
}

async fn health(connection: &Connection, wait: Option<Duration>) -> Result<(), Error> {
    let mut options = connection.client_options();
    if let Some(wait) = wait {
        // Ask again and again (backing off to 1 s) until serving or `wait` has passed.
        options.retry = RetryPolicy {
            max_attempts: u32::MAX,
            max_interval: Duration::from_secs(1),
            deadline: Some(wait),
            ..RetryPolicy::default()
        };
    }
    let client = connection.connect(options).await?;
    let out = HealthOut {
        status: "serving",
        address: client.current_address().to_string(),
    };
    match connection.output {
        OutputFormat::Json => output::print_json(&out),
        OutputFormat::Table => println!("{} is serving", out.address),
    }
    Ok(())
}

async fn run_command(command: ClientCommand) -> Result<(), (Error, OutputFormat)> {
    let connection = match &command {
        ClientCommand::Lock { connection, .. }
        | ClientCommand::Cache { connection, .. }
        | ClientCommand::Events { connection, .. }
        | ClientCommand::Saga { connection, .. }
        | ClientCommand::Health { connection, .. } => connection.clone(),
    };
    let format = connection.output;
    let with_format = |err| (err, format);
    if let ClientCommand::Health { wait, .. } = command {
        return health(&connection, wait.map(Into::into))
            .await
            .map_err(with_format);
    }
    let client = connection
        .connect(connection.client_options())
        .await
        .map_err(with_format)?;
    match command {
        ClientCommand::Lock { command, .. } => locks::run(&client, command, format).await,
        ClientCommand::Cache { command, .. } => cache::run(&client, command, format).await,
        ClientCommand::Events { command, .. } => events::run(&client, command, format).await,
        ClientCommand::Saga { command, .. } => sagas::run(&client, command, format).await,
        ClientCommand::Health { .. } => Ok(()),
    }
    .map_err(with_format)
}

/// Run a client command to its end and give its exit status (docs/cli.md lists them).
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("syros: cannot start the async runtime: {err}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = runtime.block_on(run_command(command));
    // Background work (a subscription's reconnects) must not hold the process open.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err((err, format)) => ExitCode::from(output::report_error(&err, format)),
    }
}
