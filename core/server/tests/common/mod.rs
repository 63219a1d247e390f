//! Runs a real `syros serve` process for end-to-end tests and builds gRPC clients for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use syros_proto::grpc::health::v1 as health;
use syros_proto::syros::v1 as pb;

/// A `syros serve` child process on ephemeral loopback ports.
pub struct ServerProcess {
    child: Child,
    /// gRPC.
    pub addr: SocketAddr,
    /// REST, GraphQL, `/health`, `/metrics` (REST_PORT, a free port).
    pub rest_addr: SocketAddr,
    /// The event WebSocket API (WS_PORT, a free port).
    pub ws_addr: SocketAddr,
    pub data_dir: PathBuf,
    log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Start a server with its data in `data_dir` and wait until health says SERVING.
    pub async fn start(data_dir: &Path) -> ServerProcess {
        Self::start_on(data_dir, free_port()).await
    }

    pub async fn start_on(data_dir: &Path, port: u16) -> ServerProcess {
        Self::start_with(data_dir, port, &[]).await
    }

    /// Start with extra environment variables (e.g. `REDIS_URL`, `DATABASE_URL`).
    pub async fn start_with(data_dir: &Path, port: u16, env: &[(&str, String)]) -> ServerProcess {
        let log = data_dir.join(format!("server-{port}-{}.log", std::process::id()));
        std::fs::create_dir_all(data_dir).unwrap();
        let log_file = std::fs::File::create(&log).unwrap();
        let (rest_port, ws_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_syros"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SERVER_HOST", "127.0.0.1")
            .env("GRPC_PORT", port.to_string())
            .env("REST_PORT", rest_port.to_string())
            .env("WS_PORT", ws_port.to_string())
            .env("SYROS_DATA_DIR", data_dir)
            .env("LOG_LEVEL", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(data_dir)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn syros");
        let mut server = ServerProcess {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            rest_addr: ([127, 0, 0, 1], rest_port).into(),
            ws_addr: ([127, 0, 0, 1], ws_port).into(),
            data_dir: data_dir.into(),
            log,
        };
        server.wait_serving().await;
        server
    }

    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "syros exited with {status} before serving:\n{}",
                    self.log_text()
                );
            }
            let client = health_client(self.addr);
            let check = client
                .check(health::HealthCheckRequest { service: "".into() })
                .await;
            if let Ok(resp) = check {
                if resp.into_inner().status == health::health_check_response::ServingStatus::SERVING
                {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "syros did not report SERVING within 60 s:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:REST_PORT` + `path`.
    pub fn rest_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.rest_addr)
    }

    /// `ws://127.0.0.1:WS_PORT` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.ws_addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the exit status (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY-free: `kill` is run as a command to avoid a libc dependency in tests.
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn health_client(addr: SocketAddr) -> health::HealthClient {
    health::HealthClientBuilder::new("syros")
        .address(addr)
        .build()
}

pub fn locks(addr: SocketAddr) -> pb::LockServiceClient {
    pb::LockServiceClientBuilder::new("syros")
        .address(addr)
        .build()
}

pub fn cache(addr: SocketAddr) -> pb::CacheServiceClient {
    pb::CacheServiceClientBuilder::new("syros")
        .address(addr)
        .build()
}

pub fn events(addr: SocketAddr) -> pb::EventServiceClient {
    pb::EventServiceClientBuilder::new("syros")
        .address(addr)
        .build()
}

pub fn acquire_request(
    key: &str,
    owner: &str,
    ttl_ms: u64,
    wait_ms: u64,
) -> pb::AcquireLockRequest {
    pb::AcquireLockRequest {
        key: key.to_string().into(),
        owner: owner.to_string().into(),
        ttl_ms,
        wait_timeout_ms: wait_ms,
        request_id: Default::default(),
    }
}

pub fn event(event_type: &str, data: &str) -> pb::EventData {
    pb::EventData {
        event_id: Default::default(),
        event_type: event_type.to_string().into(),
        data_json: data.to_string().into(),
        metadata_json: Default::default(),
    }
}

pub fn expected(kind: pb::expected_version::Kind) -> Option<pb::ExpectedVersion> {
    Some(pb::ExpectedVersion { kind: Some(kind) })
}

/// The Syros error code a status carries in its metadata.
pub fn error_code(status: &volo_grpc::Status) -> String {
    status
        .metadata()
        .get("syros-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
