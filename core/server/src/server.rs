//! Runs the server: opens storage, binds the gRPC port, reports health, shuts down gracefully.

use std::time::Duration;

use anyhow::Context;
use syros_engine::{Engine, Limits, StoreConfig, Stores};
use syros_proto::grpc::health::v1::HealthServer;
use syros_proto::syros::v1::{
    CacheServiceServer, EventServiceServer, LockServiceServer, SagaServiceServer,
};
use tokio::sync::{watch, Notify};
use volo::net::incoming::{Incoming, MakeIncoming};
use volo::net::{conn::Conn, DefaultIncoming};
use volo_grpc::server::layer::timeout::TimeoutLayer;
use volo_grpc::server::{Server, ServiceBuilder};

use crate::config::Config;
use crate::grpc::{self, layers};
use crate::http;

/// How long open calls (streams, waits) may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections and keeps doing so after an accept error (e.g. out of file descriptors),
/// which would otherwise end volo's serve loop and with it the server.
#[derive(Debug)]
struct ResilientIncoming(DefaultIncoming);

impl Incoming for ResilientIncoming {
    async fn accept(&mut self) -> std::io::Result<Option<Conn>> {
        loop {
            match self.0.accept().await {
                Ok(conn) => return Ok(conn),
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl MakeIncoming for ResilientIncoming {
    type Incoming = Self;
    async fn make_incoming(self) -> std::io::Result<Self> {
        Ok(self)
    }
}

async fn open_stores(storage: &StoreConfig) -> anyhow::Result<Stores> {
    let embedded_needed = storage.postgres_url.is_none() || storage.redis_url.is_none();
    let path = &storage.embedded_path;
    if embedded_needed {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        }
    }
    let stores = Stores::open(storage)
        .await
        .context("cannot open storage (check DATABASE_URL, REDIS_URL and SYROS_DATA_DIR)")?;
    tracing::info!(
        locks_and_cache = if storage.redis_url.is_some() { "redis" } else { "embedded" },
        events = if storage.postgres_url.is_some() { "postgresql" } else { "embedded" },
        embedded_path = %if embedded_needed { path.display().to_string() } else { "-".into() },
        namespace = %storage.namespace,
        "storage open"
    );
    Ok(stores)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Report the bound addresses as JSON, atomically (a reader never sees half a file).
fn write_ready_file(
    path: &std::path::Path,
    grpc: std::net::SocketAddr,
    rest: std::net::SocketAddr,
    websocket: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let report = serde_json::json!({
        "grpc": grpc.to_string(),
        "rest": rest.to_string(),
        "websocket": websocket.to_string(),
        "pid": std::process::id(),
    });
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{report}\n"))
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("cannot write the ready file {}", path.display()))
}

/// Serve until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %err, "cannot raise the open-files limit");
    }
    let stores = open_stores(&config.storage).await?;
    let limits = Limits {
        cache_max_value_bytes: config.cache_max_value_bytes,
        ..Limits::default()
    };
    let api_keys = syros_engine::ApiKeys::new(stores.api_keys.clone());
    let engine = Engine::new(stores, limits);
    let security = crate::security::Security::new(config.security.clone(), api_keys)?;
    if !security.enabled() {
        tracing::warn!("authentication is off: every caller may do everything (docs/security.md)");
    }
    tokio::spawn({
        let security = security.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                security.housekeeping();
            }
        }
    });

    let listener = tokio::net::TcpListener::bind((config.host, config.grpc_port))
        .await
        .with_context(|| format!("cannot bind gRPC to {}:{}", config.host, config.grpc_port))?;
    let grpc_addr = listener.local_addr()?;

    let (serving_tx, serving_rx) = watch::channel(false);
    let mut server = Server::new();
    if let Some(tls) = &config.tls {
        let rustls = crate::security::tls::server_config(tls, &[b"h2"])?;
        server = server.tls_config(volo::net::tls::ServerTlsConfig {
            acceptor: rustls.into(),
        });
        tracing::info!(mtls = tls.client_ca_file.is_some(), "TLS on every port");
    }
    let server = server
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Duration::from_secs(10))
        // Each stream may be a lock waiter or a subscription: bound them per connection.
        .http2_max_concurrent_streams(config.grpc_max_concurrent_streams)
        .layer_front(layers::CatchPanicLayer)
        .layer_front(TimeoutLayer::new())
        // Outermost: timeouts, limits and authentication failures are part of the call's span.
        .layer_front(layers::TraceLayer)
        .layer(layers::RequestLimitLayer(layers::MAX_REQUEST_BYTES))
        .layer(layers::LockWaiterLimitLayer::new(
            config.grpc_max_lock_waiters_per_connection,
        ))
        .layer(crate::security::grpc::AuthLayer(security.clone()))
        // Last `layer_front`: outermost of the inner layers, so volo's per-request clone of the
        // stack is one Arc clone (see grpc/shared.rs).
        .layer_front(grpc::shared::SharedLayer)
        .add_service(
            ServiceBuilder::new(LockServiceServer::new(grpc::locks::LockApi {
                engine: engine.clone(),
            }))
            .build(),
        )
        .add_service(
            ServiceBuilder::new(CacheServiceServer::new(grpc::cache::CacheApi {
                engine: engine.clone(),
            }))
            .build(),
        )
        .add_service(
            ServiceBuilder::new(EventServiceServer::new(grpc::events::EventApi {
                engine: engine.clone(),
            }))
            .build(),
        )
        .add_service(
            ServiceBuilder::new(SagaServiceServer::new(grpc::sagas::SagaApi {
                engine: engine.clone(),
            }))
            .build(),
        )
        .add_service(
            ServiceBuilder::new(HealthServer::new(grpc::health::HealthApi {
                serving: serving_rx,
            }))
            .build(),
        );

    let gateways = http::Gateways::start(&config, engine.clone(), security).await?;
    let stop_http = gateways.stop_handle();

    // Storage is open and the port bound (connections wait in the backlog until the loop below
    // accepts them), so the server reports SERVING from here on.
    serving_tx.send_replace(true);
    tracing::info!(
        grpc = %grpc_addr,
        rest = %gateways.rest_addr,
        websocket = %gateways.ws_addr,
        "syros ready"
    );
    if let Some(path) = &config.ready_file {
        write_ready_file(path, grpc_addr, gateways.rest_addr, gateways.ws_addr)?;
    }

    let stopping = std::sync::Arc::new(Notify::new());
    let on_signal = {
        let engine = engine.clone();
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            serving_tx.send_replace(false);
            stop_http.stop();
            engine.shutdown();
            stopping.notify_one();
            Ok(())
        }
    };
    let run = server.run_with_shutdown(
        ResilientIncoming(DefaultIncoming::from(listener)),
        on_signal,
    );
    let run = async move { tokio::join!(run, gateways.finished()).0 };
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => result.map_err(|e| anyhow::anyhow!("gRPC server failed: {e}"))?,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } => tracing::warn!("open calls did not finish within {DRAIN_TIMEOUT:?}; stopping anyway"),
    }
    tracing::info!("syros stopped");
    Ok(())
}
