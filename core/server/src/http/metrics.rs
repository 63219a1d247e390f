//! Prometheus metrics: the recorder, the per-request middleware and the counters that the
//! transports record around engine calls.
//!
//! Engine-level counters (lock acquisitions, appended events, cache hits) are recorded here, by
//! the adapters, because the engine has no metrics hooks yet; every transport calls the same
//! functions, so the numbers cover gRPC, REST, GraphQL and WebSocket alike.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests answered, by `method`, `route` (the route template) and `status`.
pub const HTTP_REQUESTS: &str = "syros_http_requests_total";
/// HTTP request latency in seconds, by `method`, `route` and `status`.
pub const HTTP_DURATION: &str = "syros_http_request_duration_seconds";
/// Lock acquire calls by `outcome` (`acquired`, `not_acquired`, `error`) and `api`.
pub const LOCK_ACQUISITIONS: &str = "syros_lock_acquisitions_total";
/// Events appended, by `api`.
pub const EVENTS_APPENDED: &str = "syros_events_appended_total";
/// Cache reads by `result` (`hit`, `miss`) and `api`.
pub const CACHE_LOOKUPS: &str = "syros_cache_lookups_total";
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
    metrics::describe_counter!(LOCK_ACQUISITIONS, "lock acquire calls by outcome");
    metrics::describe_counter!(EVENTS_APPENDED, "events appended");
    metrics::describe_counter!(CACHE_LOOKUPS, "cache reads by hit or miss");
    metrics::describe_gauge!(WS_CONNECTIONS, "open event WebSocket connections");
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

/// Records the outcome of a lock acquire: `acquired`, `not_acquired` or `error`.
pub fn lock_acquire(api: &'static str, outcome: &'static str) {
    metrics::counter!(LOCK_ACQUISITIONS, "outcome" => outcome, "api" => api).increment(1);
}

/// Records `count` appended events.
pub fn events_appended(api: &'static str, count: usize) {
    metrics::counter!(EVENTS_APPENDED, "api" => api).increment(count as u64);
}

/// Records a cache read.
pub fn cache_lookup(api: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE_LOOKUPS, "result" => result, "api" => api).increment(1);
}

/// The acquire outcome label of an engine answer.
pub fn acquire_outcome<E>(outcome: &Result<syros_engine::AcquireOutcome, E>) -> &'static str {
    match outcome {
        Ok(syros_engine::AcquireOutcome::Acquired(_)) => "acquired",
        Ok(syros_engine::AcquireOutcome::TimedOut { .. }) => "not_acquired",
        Err(_) => "error",
    }
}

/// Records a WebSocket client cut off for not keeping up.
pub fn counter_slow_consumer() {
    metrics::counter!(WS_SLOW_CONSUMERS).increment(1);
}

/// Adds `delta` to the open WebSocket connections.
pub fn ws_connections(delta: f64) {
    metrics::gauge!(WS_CONNECTIONS).increment(delta);
}
