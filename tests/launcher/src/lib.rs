//! The one way Syros tests start a server: a real `syros serve` process on ephemeral ports,
//! which reports the addresses it bound through its ready file (`--ready-file`), so no test
//! guesses a free port or polls a socket.
//!
//! The binary comes from `SYROS_BIN` (scripts/test builds `syros-server` and exports it). A test
//! that cannot start its server fails with the reason and the server's log; it never skips.
//!
//! ```no_run
//! let mut server = syros_launcher::SyrosServer::start();
//! let address = server.grpc_address(); // "127.0.0.1:<port>"
//! server.kill9();
//! server.restart(); // same data, same ports
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `syros` binary under test (`SYROS_BIN`).
///
/// # Panics
/// When `SYROS_BIN` is unset or names no file: the test cannot run and says why.
pub fn syros_bin() -> PathBuf {
    let path = std::env::var_os("SYROS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "SYROS_BIN is not set: build the server (`cargo build -p syros-server`) and \
                 export SYROS_BIN=<target dir>/debug/syros (scripts/test does this)"
            )
        });
    assert!(
        path.is_file(),
        "SYROS_BIN={} does not exist: run `cargo build -p syros-server` first",
        path.display()
    );
    path
}

/// Which storage a server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the server's data directory (the default).
    Embedded,
    /// Redis (`SYROS_TEST_REDIS_URL`) and PostgreSQL (`SYROS_TEST_DATABASE_URL`), which
    /// scripts/test starts; a fresh namespace per server unless one is given.
    RedisPostgres,
}

impl Backend {
    /// The backend named by `SYROS_TEST_BACKEND` (`embedded`, the default, or `redis-postgres`).
    pub fn from_env() -> Backend {
        match std::env::var("SYROS_TEST_BACKEND").as_deref() {
            Ok("redis-postgres") | Ok("redis+postgres") => Backend::RedisPostgres,
            Ok("embedded") | Ok("") | Err(_) => Backend::Embedded,
            Ok(other) => {
                panic!("SYROS_TEST_BACKEND={other:?}: expected \"embedded\" or \"redis-postgres\"")
            }
        }
    }

    /// A short name for test output.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::RedisPostgres => "redis-postgres",
        }
    }
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs a real server for it (scripts/test starts \
             Redis and PostgreSQL and exports SYROS_TEST_REDIS_URL / SYROS_TEST_DATABASE_URL)"
        )
    })
}

/// Options of a server to start.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    backend: Backend,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    namespace: Option<String>,
    binary: Option<PathBuf>,
}

impl ServerBuilder {
    /// Run this `syros` binary instead of `SYROS_BIN` (the server crate's own tests pass
    /// `env!("CARGO_BIN_EXE_syros")`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Use `backend` (default: [`Backend::Embedded`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Set an environment variable of the server (configuration: `LOG_LEVEL`, `CORS_ORIGINS`...).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// Keep the embedded data in `dir` (default: a temporary directory removed on drop).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Share Redis/PostgreSQL state with other servers started with the same namespace
    /// (replicas). Default: a fresh namespace per server.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Start the server and wait until it reports ready.
    pub fn start(self) -> SyrosServer {
        let temp = tempfile::tempdir().expect("a temporary directory for the server");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let mut env = vec![
            ("SYROS_DATA_DIR".to_string(), data_dir.display().to_string()),
            ("LOG_LEVEL".to_string(), "info".to_string()),
        ];
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| format!("t{}", uuid::Uuid::new_v4().simple()));
        if self.backend == Backend::RedisPostgres {
            env.push(("REDIS_URL".into(), required_env("SYROS_TEST_REDIS_URL")));
            env.push((
                "DATABASE_URL".into(),
                required_env("SYROS_TEST_DATABASE_URL"),
            ));
            env.push(("SYROS_NAMESPACE".into(), namespace.clone()));
        }
        env.extend(self.env.iter().cloned());
        let mut server = SyrosServer {
            child: None,
            temp,
            data_dir,
            env,
            ports: None,
            ready: None,
            starts: 0,
            backend: self.backend,
            namespace,
            binary: self.binary.unwrap_or_else(syros_bin),
        };
        server.spawn();
        server
    }
}

/// The addresses a running server reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// gRPC.
    pub grpc: SocketAddr,
    /// REST + GraphQL.
    pub rest: SocketAddr,
    /// WebSocket.
    pub websocket: SocketAddr,
    /// The server's process id.
    pub pid: u32,
}

/// A running `syros serve` child process; killed when dropped.
pub struct SyrosServer {
    child: Option<Child>,
    temp: tempfile::TempDir,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
    /// Ports of the first start, reused by restarts so clients find the server again.
    ports: Option<Ready>,
    ready: Option<Ready>,
    starts: u32,
    backend: Backend,
    namespace: String,
    binary: PathBuf,
}

impl SyrosServer {
    /// Options for a server to start.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            backend: Backend::Embedded,
            env: Vec::new(),
            data_dir: None,
            namespace: None,
            binary: None,
        }
    }

    /// An embedded server with default options.
    pub fn start() -> SyrosServer {
        Self::builder().start()
    }

    /// A server on the backend named by `SYROS_TEST_BACKEND` ([`Backend::from_env`]).
    pub fn start_from_env() -> SyrosServer {
        Self::builder().backend(Backend::from_env()).start()
    }

    fn ready_path(&self) -> PathBuf {
        self.temp.path().join("ready.json")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.temp.path().join(format!("syros-{start}.log"))
    }

    fn spawn(&mut self) {
        let ready_path = self.ready_path();
        let _ = std::fs::remove_file(&ready_path);
        self.starts += 1;
        let log_path = self.log_path(self.starts);
        let log = std::fs::File::create(&log_path).expect("create the server log");
        let (grpc, rest, ws) = match &self.ports {
            Some(ports) => (ports.grpc.port(), ports.rest.port(), ports.websocket.port()),
            None => (0, 0, 0),
        };
        std::fs::create_dir_all(&self.data_dir).expect("create the server's data directory");
        // A clean environment: a developer's DATABASE_URL, REDIS_URL or CORS_ORIGINS must not
        // leak into a test's server; only PATH and RUST_BACKTRACE pass through.
        let inherited = ["PATH", "RUST_BACKTRACE"]
            .into_iter()
            .filter_map(|name| Some((name, std::env::var_os(name)?)));
        let child = Command::new(&self.binary)
            .arg("serve")
            .env_clear()
            .envs(inherited)
            .env("SERVER_HOST", "127.0.0.1")
            .current_dir(self.temp.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("GRPC_PORT", grpc.to_string())
            .env("REST_PORT", rest.to_string())
            .env("WS_PORT", ws.to_string())
            .env("SYROS_READY_FILE", &ready_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", self.binary.display()));
        self.child = Some(child);
        let ready = self.wait_ready(&ready_path);
        self.ports.get_or_insert(ready);
        self.ready = Some(ready);
    }

    fn wait_ready(&mut self, path: &Path) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Some(ready) = parse_ready(&text) {
                    return ready;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "syros serve exited ({status}) before it was ready; its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "syros serve was not ready within {READY_TIMEOUT:?}; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ready(&self) -> Ready {
        self.ready.or(self.ports).expect("the server was started")
    }

    /// The gRPC address (stable across restarts).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.ready().grpc
    }

    /// The gRPC address as `host:port`.
    pub fn grpc_address(&self) -> String {
        self.grpc_addr().to_string()
    }

    /// `http://<rest address><path>`.
    pub fn rest_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ready().rest)
    }

    /// `ws://<websocket address><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.ready().websocket)
    }

    /// The addresses of the running process.
    pub fn addresses(&self) -> Ready {
        self.ready()
    }

    /// Its process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the embedded data lives.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The Redis/PostgreSQL namespace (start replicas with the same one).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The process's peak resident memory so far (`VmHWM` in /proc, Linux), in bytes.
    ///
    /// # Panics
    /// When the server is not running or /proc cannot be read.
    pub fn peak_rss_bytes(&self) -> u64 {
        let pid = self.pid().expect("the server is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|err| panic!("read /proc/{pid}/status: {err}"));
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown, no flush, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.ready = None;
    }

    /// SIGTERM, then wait up to `within` for a graceful exit (SIGKILL after that). Returns the
    /// exit status when it exited by itself.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        self.ready = None;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Start again after [`Self::kill9`] or [`Self::terminate`] (or kill -9 and start, if it
    /// is running): same data, same ports, same configuration.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Everything the server has logged, over all its starts.
    pub fn log_text(&self) -> String {
        (1..=self.starts)
            .map(|start| std::fs::read_to_string(self.log_path(start)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for SyrosServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn parse_ready(text: &str) -> Option<Ready> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let addr = |name: &str| value.get(name)?.as_str()?.parse::<SocketAddr>().ok();
    Some(Ready {
        grpc: addr("grpc")?,
        rest: addr("rest")?,
        websocket: addr("websocket")?,
        pid: u32::try_from(value.get("pid")?.as_u64()?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ready_report_and_refuses_a_partial_one() {
        let ready = parse_ready(
            r#"{"grpc":"127.0.0.1:1","rest":"127.0.0.1:2","websocket":"127.0.0.1:3","pid":7}"#,
        )
        .expect("a complete report");
        assert_eq!(ready.grpc.port(), 1);
        assert_eq!(ready.websocket.port(), 3);
        assert_eq!(ready.pid, 7);
        assert!(parse_ready(r#"{"grpc":"127.0.0.1:1"}"#).is_none());
        assert!(parse_ready("{\"grpc\":").is_none());
    }
}
