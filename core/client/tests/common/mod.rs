//! Runs a real `syros serve` process for the client's end-to-end tests, through the one test
//! launcher (`syros_launcher`): ephemeral ports read from the server's ready file.
//!
//! The backend comes from `SYROS_TEST_BACKEND` (`embedded`, the default, or `redis-postgres`;
//! scripts/test runs these tests once with each). A test that depends on one backend (it edits
//! the embedded SQLite file, or puts a proxy in front of PostgreSQL) asks for it explicitly with
//! [`Server::start_on`]. The binary comes from `SYROS_BIN`; a test without it fails, never skips.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syros_client::{Client, ClientOptions, RetryPolicy};
pub use syros_launcher::Backend;
use syros_launcher::SyrosServer;

/// A `syros serve` child process on loopback; killed when dropped.
pub struct Server {
    process: SyrosServer,
    /// The gRPC port (the same after a restart).
    pub port: u16,
    /// The embedded store's directory.
    pub data_dir: PathBuf,
}

impl Server {
    /// Start on the backend `SYROS_TEST_BACKEND` names, with its embedded data in `data_dir`.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_on(data_dir, Backend::from_env(), &[])
    }

    /// Start on `backend` with extra environment variables (`DATABASE_URL`, ...): for tests
    /// that need one backend whatever `SYROS_TEST_BACKEND` says.
    pub fn start_on(data_dir: &Path, backend: Backend, env: &[(&str, &str)]) -> Server {
        let builder = env.iter().fold(
            SyrosServer::builder().backend(backend).data_dir(data_dir),
            |builder, (name, value)| builder.env(name, *value),
        );
        let process = builder.start();
        Server {
            port: process.grpc_addr().port(),
            data_dir: data_dir.to_path_buf(),
            process,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.process.grpc_addr()
    }

    pub fn address(&self) -> String {
        self.process.grpc_address()
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &Backend {
        self.process.backend()
    }

    /// Start the process again (same ports, same data) and wait until it is ready.
    pub fn restart(&mut self) {
        assert!(!self.process.is_running(), "server already running");
        self.process.restart();
    }

    /// SIGKILL: a crash, no chance to clean up.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGTERM and wait for the exit (graceful shutdown closes open streams).
    pub fn terminate(&mut self) {
        self.process.terminate(Duration::from_secs(15));
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// A loopback address where nothing listens (for a dead entry in an address list).
pub fn unused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local addr").to_string();
    drop(listener);
    address
}

/// Options for tests: quick retries, bounded by a deadline.
pub fn options(addresses: &[String]) -> ClientOptions {
    let mut options = ClientOptions::new(addresses.iter().cloned());
    options.connect_timeout = Duration::from_secs(2);
    options.call_timeout = Duration::from_secs(5);
    options.retry = RetryPolicy {
        initial_interval: Duration::from_millis(20),
        multiplier: 2.0,
        max_interval: Duration::from_millis(300),
        max_attempts: 100,
        deadline: Some(Duration::from_secs(20)),
    };
    options.resubscribe = RetryPolicy {
        initial_interval: Duration::from_millis(20),
        multiplier: 2.0,
        max_interval: Duration::from_millis(300),
        max_attempts: u32::MAX,
        deadline: None,
    };
    options
}

pub async fn connect(server: &Server) -> Client {
    Client::connect(options(&[server.address()]))
        .await
        .expect("connect")
}
