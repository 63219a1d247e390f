//! Prometheus metrics: the recorder, the per-request middleware and the WebSocket gauges.
//!
//! Engine-level metrics (lock acquisitions, waits and holders, appended events, cache hits, saga
//! transitions) are recorded by the engine itself ([`syros_engine::telemetry`]), where the work
//! happens, so every transport is counted exactly once; this module only installs the recorder
//! they report to.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use syros_engine::telemetry;

/// HTTP requests answered, by `method`, `route` (the route template) and `status`.
pub const HTTP_REQUESTS: &str = "syros_http_requests_total";
/// HTTP request latency in seconds, by `method`, `route` and `status`.
pub const HTTP_DURATION: &str = "syros_http_request_duration_seconds";
/// Error answers by `transport` (`grpc`, `http`) and `code`, the stable Syros error code of
/// docs/errors.md (`lock_not_held`, `version_conflict`, `internal`, ...).
pub const API_ERRORS: &str = "syros_api_errors_total";
/// Open WebSocket connections (event WebSocket API).
pub const WS_CONNECTIONS: &str = "syros_websocket_connections";
/// WebSocket connections closed because the client did not keep up.
pub const WS_SLOW_CONSUMERS: &str = "syros_websocket_slow_consumer_disconnects_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. Returns `None` if another
/// recorder was installed first (metrics are then not exported).
pub fn handle() -> Option<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Some(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), LATENCY_BUCKETS)
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full(telemetry::LOCK_WAIT.to_string()),
            telemetry::LOCK_WAIT_BUCKETS,
        )
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full(telemetry::SAGA_STEP_DURATION.to_string()),
            telemetry::SAGA_STEP_BUCKETS,
        )
        .ok()?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder is already installed; /metrics stays empty");
        return HANDLE.get().cloned();
    }
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency"
    );
    telemetry::describe();
    metrics::describe_counter!(
        API_ERRORS,
        "error answers by transport and Syros error code"
    );
    metrics::describe_gauge!(WS_CONNECTIONS, "open event WebSocket connections");
    // Exported from the start (0), not only once a first client connected: dashboards query it.
    metrics::gauge!(WS_CONNECTIONS).set(0.0);
    metrics::describe_counter!(
        WS_SLOW_CONSUMERS,
        "WebSocket connections closed because the client did not keep up"
    );
    let _ = HANDLE.set(handle.clone());
    // Histograms are buffered until rendered; drain them regularly even if nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Some(handle)
}

/// Middleware: counts every request and observes its latency by route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(start.elapsed().as_secs_f64());
    response
}

/// Records an error answer (see [`API_ERRORS`]).
pub fn api_error(transport: &'static str, code: &str) {
    metrics::counter!(API_ERRORS, "transport" => transport, "code" => code.to_string())
        .increment(1);
}

/// Records a WebSocket client cut off for not keeping up.
pub fn counter_slow_consumer() {
    metrics::counter!(WS_SLOW_CONSUMERS).increment(1);
}

/// Adds `delta` to the open WebSocket connections.
pub fn ws_connections(delta: f64) {
    metrics::gauge!(WS_CONNECTIONS).increment(delta);
}
