//! Runs a real `syros serve` process for end-to-end tests, through the one test launcher
//! (`syros_launcher`: ephemeral ports read from the server's ready file), and builds gRPC
//! clients for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use syros_launcher::SyrosServer;
use syros_proto::grpc::health::v1 as health;
use syros_proto::syros::v1 as pb;

/// A `syros serve` child process (this crate's binary) on ephemeral loopback ports.
pub struct ServerProcess {
    process: SyrosServer,
    /// gRPC.
    pub addr: SocketAddr,
    /// REST, GraphQL, `/health`, `/metrics`.
    pub rest_addr: SocketAddr,
    /// The event WebSocket API.
    pub ws_addr: SocketAddr,
    pub data_dir: PathBuf,
}

/// A free loopback port, for a helper process that cannot report its own (redis-server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Start a server on the embedded store with its data in `data_dir`; it is serving when
    /// this returns (it wrote its ready file).
    pub async fn start(data_dir: &Path) -> ServerProcess {
        Self::start_with(data_dir, &[]).await
    }

    /// Start with extra environment variables (e.g. `REDIS_URL`, `DATABASE_URL`).
    pub async fn start_with(data_dir: &Path, env: &[(&str, String)]) -> ServerProcess {
        let builder = env.iter().fold(
            SyrosServer::builder()
                .binary(env!("CARGO_BIN_EXE_syros"))
                .data_dir(data_dir),
            |builder, (name, value)| builder.env(name, value.as_str()),
        );
        let process = builder.start();
        let ready = process.addresses();
        ServerProcess {
            addr: ready.grpc,
            rest_addr: ready.rest,
            ws_addr: ready.websocket,
            data_dir: data_dir.into(),
            process,
        }
    }

    /// `http://127.0.0.1:REST_PORT` + `path`.
    pub fn rest_url(&self, path: &str) -> String {
        self.process.rest_url(path)
    }

    /// `ws://127.0.0.1:WS_PORT` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        self.process.ws_url(path)
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Start again after [`Self::kill9`]: same data, same ports, same configuration.
    pub fn restart(&mut self) {
        self.process.restart();
    }

    /// SIGTERM, then wait for the exit status (at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.process.terminate(within)
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.process.peak_rss_bytes()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
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

/// A WebSocket client connection (the event WebSocket API, GraphQL subscriptions).
pub type WebSocketClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The close frame `socket` ends with, after any other messages; panics if it ends otherwise.
pub async fn close_frame(
    socket: &mut WebSocketClient,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
