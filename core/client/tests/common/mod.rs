//! Runs a real `syros serve` process for the client's end-to-end tests.
//!
//! The binary comes from `SYROS_BIN` (scripts/test builds `syros-server` and exports it); a test
//! without it fails with a clear message instead of skipping.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use syros_client::{Client, ClientOptions, RetryPolicy};

/// The `syros` binary under test.
pub fn syros_bin() -> PathBuf {
    let path = std::env::var_os("SYROS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
            "SYROS_BIN is not set: build the server (`cargo build -p syros-server`) and export \
             SYROS_BIN=<target dir>/debug/syros before running the syros-client tests \
             (scripts/test does this)"
        )
        });
    assert!(
        path.is_file(),
        "SYROS_BIN={} does not exist: run `cargo build -p syros-server` first",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A `syros serve` child process on a loopback port; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
    starts: u32,
    /// Extra environment for the process (e.g. `DATABASE_URL`).
    env: Vec<(String, String)>,
}

impl Server {
    /// Start on a free port with its data in `data_dir`, and wait until it serves.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_on(data_dir, free_port())
    }

    pub fn start_on(data_dir: &Path, port: u16) -> Server {
        Self::start_with_env(data_dir, port, &[])
    }

    /// Like [`Server::start_on`], with extra environment variables (`DATABASE_URL`, ...).
    pub fn start_with_env(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let mut server = Server {
            child: None,
            port,
            data_dir: data_dir.to_path_buf(),
            log: data_dir.join(format!("server-{port}.log")),
            starts: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.restart();
        server
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn address(&self) -> String {
        self.addr().to_string()
    }

    /// Start the process again (same port, same data) and wait until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "server already running");
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(syros_bin())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_HOST", "127.0.0.1")
            .env("GRPC_PORT", self.port.to_string())
            .env("REST_PORT", free_port().to_string())
            .env("WS_PORT", free_port().to_string())
            .env("SYROS_DATA_DIR", &self.data_dir)
            .env("LOG_LEVEL", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn syros");
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    panic!(
                        "syros exited with {status} before serving:\n{}",
                        self.log_text()
                    );
                }
            }
            if std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "syros did not listen within 60 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit (graceful shutdown closes open streams).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
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
