//! The HTTP gateways, thin adapters over the same engine calls as gRPC (one engine call per
//! operation):
//!
//! - on `REST_PORT`: the REST API under `/api/v1` (docs/rest-api.md), GraphQL at `/graphql`
//!   with subscriptions at `/graphql/ws` (docs/graphql-api.md), `/health`, `/ready`, `/metrics`
//!   and `/openapi.json`;
//! - on `WS_PORT`: the event WebSocket API (docs/websocket-api.md).
//!
//! Both stop accepting on shutdown and let open requests finish; WebSocket connections are
//! closed with code 1001.

pub mod auth;
pub mod cache;
pub mod error;
pub mod events;
pub mod graphql;
pub mod guard;
pub mod health;
pub mod locks;
pub mod metrics;
pub mod openapi;
pub mod sagas;
pub mod trace;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::{delete, get, post};
use axum::{middleware, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use syros_engine::Engine;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::Config;
use error::ApiError;

/// What every HTTP handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Option<PrometheusHandle>,
    /// Becomes `true` when the server shuts down (WebSocket connections close on it).
    pub stopping: watch::Receiver<bool>,
    /// Event WebSocket connections still open: shutdown waits for them to send their close frame
    /// (an upgraded connection is no longer tracked by the HTTP server's graceful shutdown).
    pub open_websockets: Arc<watch::Sender<usize>>,
    /// Authentication, permissions and rate limits (docs/security.md).
    pub security: Arc<crate::security::Security>,
}

/// Largest request body: the gRPC limit (16 MiB), or more when the configured cache value limit
/// needs it (a value travels base64-encoded in JSON).
pub fn body_limit(cache_max_value_bytes: usize) -> usize {
    let base64_value = cache_max_value_bytes / 3 * 4 + 64 * 1024;
    crate::grpc::layers::MAX_REQUEST_BYTES.max(base64_value)
}

/// `ms` since the Unix epoch as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// A duration given as `<what>_ms` or `<what>_seconds` (at most one), in milliseconds.
pub fn duration_ms(
    what: &str,
    ms: Option<u64>,
    seconds: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match (ms, seconds) {
        (Some(_), Some(_)) => Err(ApiError::invalid(format!(
            "give {what}_ms or {what}_seconds, not both"
        ))),
        (Some(ms), None) => Ok(Some(ms)),
        (None, Some(s)) => Ok(Some(s.saturating_mul(1000))),
        (None, None) => Ok(None),
    }
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).with_context(|| format!("invalid CORS origin {o:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers(Any)
            .max_age(Duration::from_secs(600)),
    ))
}

/// The REST API routes under `/api/v1`.
fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/locks", post(locks::acquire).get(locks::list))
        .route("/locks/status", get(locks::status))
        .route("/locks/{lease_id}", delete(locks::release))
        .route("/locks/{lease_id}/renew", post(locks::renew))
        .route("/admin/locks/force-release", post(locks::force_release))
        .route(
            "/cache/{key}",
            get(cache::get).put(cache::put).delete(cache::delete),
        )
        .route("/cache/tags/{tag}/invalidate", post(cache::invalidate_tag))
        .route("/events", get(events::read_all))
        .route(
            "/events/{stream}",
            post(events::append).get(events::read_stream),
        )
        .route("/sagas", post(sagas::start).get(sagas::list))
        .route("/sagas/{saga_id}", get(sagas::get))
        .route("/sagas/{saga_id}/cancel", post(sagas::cancel))
}

/// What every router is built with besides its routes.
#[derive(Clone)]
pub struct RouterSettings {
    pub body_limit: usize,
    pub cors: Option<CorsLayer>,
    pub guard: Arc<guard::BrowserGuard>,
}

/// The layers every router gets: metrics and a server span (with request id) per matched
/// route, JSON errors, body limit, the `Host`/`Origin` check, CORS.
fn finish(routes: Router<AppState>, state: AppState, settings: RouterSettings) -> Router {
    let router = routes
        .route_layer(middleware::from_fn(trace::trace))
        .route_layer(middleware::from_fn(metrics::track))
        .fallback(|| async {
            ApiError::for_status(axum::http::StatusCode::NOT_FOUND, "no such route")
        })
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn_with_state(
            settings.guard,
            guard::check_browser_request,
        ))
        .with_state(state);
    match settings.cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The router of `REST_PORT`.
pub fn rest_router(state: AppState, settings: RouterSettings) -> Router {
    let schema = graphql::schema(state.engine.clone());
    let protected =
        Router::new()
            .nest("/api/v1", api_routes())
            .merge(graphql::routes(schema.clone()))
            .route_layer(middleware::from_fn_with_state(
                state.security.clone(),
                auth::authenticate,
            ))
            .merge(graphql::subscription_routes(schema).route_layer(
                middleware::from_fn_with_state(state.security.clone(), auth::authenticate_or_defer),
            ));
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.security.clone(),
            auth::protect_metrics,
        ));
    let routes = protected
        .merge(metrics)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/openapi.json", get(health::openapi));
    finish(routes, state, settings)
}

/// The router of `WS_PORT`.
pub fn ws_router(state: AppState, settings: RouterSettings) -> Router {
    let routes = Router::new()
        .route("/", get(ws::upgrade))
        .route("/ws", get(ws::upgrade))
        .route_layer(middleware::from_fn_with_state(
            state.security.clone(),
            auth::authenticate_or_defer,
        ))
        .route("/health", get(health::health));
    finish(routes, state, settings)
}

/// Serve `router` on `listener` until `stopping`.
async fn serve<L>(name: &str, listener: L, router: Router, mut stopping: watch::Receiver<bool>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use axum::serve::ListenerExt;
    // The peer address feeds the per-IP rate limit (`tap_io` gives any listener connect info).
    let router = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener.tap_io(|_| {}), router)
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .await;
    if let Err(err) = served {
        tracing::error!(error = %err, "{name} server failed");
    }
}

/// The running HTTP servers.
pub struct Gateways {
    stop: Arc<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    open_websockets: Arc<watch::Sender<usize>>,
    /// Where the REST/GraphQL server listens.
    pub rest_addr: SocketAddr,
    /// Where the WebSocket server listens.
    pub ws_addr: SocketAddr,
}

/// Tells the HTTP servers to stop; cheap to clone.
#[derive(Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Stop accepting; open requests finish, WebSocket connections close.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Gateways {
    /// Bind `REST_PORT` and `WS_PORT` on the configured host and start serving.
    pub async fn start(
        config: &Config,
        engine: Arc<Engine>,
        security: Arc<crate::security::Security>,
    ) -> anyhow::Result<Gateways> {
        let settings = RouterSettings {
            body_limit: body_limit(config.cache_max_value_bytes),
            cors: cors(&config.cors_origins)?,
            guard: Arc::new(guard::BrowserGuard::new(
                config.host,
                &config.allowed_hosts,
                &config.cors_origins,
            )),
        };
        let rest = tokio::net::TcpListener::bind((config.host, config.rest_port))
            .await
            .with_context(|| format!("cannot bind REST to {}:{}", config.host, config.rest_port))?;
        let ws = tokio::net::TcpListener::bind((config.host, config.ws_port))
            .await
            .with_context(|| {
                format!(
                    "cannot bind WebSocket to {}:{}",
                    config.host, config.ws_port
                )
            })?;
        let (rest_addr, ws_addr) = (rest.local_addr()?, ws.local_addr()?);
        let (stop, stopping) = watch::channel(false);
        let open_websockets = Arc::new(watch::Sender::new(0));
        let state = AppState {
            engine,
            metrics: metrics::handle(),
            stopping: stopping.clone(),
            open_websockets: open_websockets.clone(),
            security,
        };
        let tls = match &config.tls {
            Some(tls) => Some(crate::security::tls::server_config(
                tls,
                &[b"h2", b"http/1.1"],
            )?),
            None => None,
        };
        let mut tasks = Vec::new();
        for (name, listener, router) in [
            ("REST", rest, rest_router(state.clone(), settings.clone())),
            ("WebSocket", ws, ws_router(state, settings)),
        ] {
            let stopping = stopping.clone();
            tasks.push(match &tls {
                Some(tls) => {
                    let listener = crate::security::tls::TlsListener::new(listener, tls.clone())?;
                    tokio::spawn(serve(name, listener, router, stopping))
                }
                None => tokio::spawn(serve(name, listener, router, stopping)),
            });
        }
        tracing::info!(rest = %rest_addr, websocket = %ws_addr, "HTTP gateways listening");
        Ok(Gateways {
            stop: Arc::new(stop),
            tasks,
            open_websockets,
            rest_addr,
            ws_addr,
        })
    }

    /// A handle that stops both servers.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Wait until both servers have stopped (after [`StopHandle::stop`]) and every event
    /// WebSocket connection has sent its close frame and ended.
    pub async fn finished(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = self
            .open_websockets
            .subscribe()
            .wait_for(|open| *open == 0)
            .await;
    }
}
