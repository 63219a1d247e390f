//! Operations routes: liveness, readiness (storage reachable), Prometheus metrics and the
//! OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use syros_engine::Direction;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::AppState;

/// Liveness and readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
    /// The server's version.
    pub version: String,
}

#[utoipa::path(
    operation_id = "health", get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = HealthBody))
)]
/// Liveness: the process answers.
pub async fn health() -> axum::Json<HealthBody> {
    axum::Json(HealthBody {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(
    operation_id = "ready", get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Storage answers", body = HealthBody),
        (status = 503, description = "Storage is unreachable (`unavailable`)", body = ErrorBody),
    )
)]
/// Readiness: storage answers a cheap read (the newest event position).
pub async fn ready(State(state): State<AppState>) -> Result<axum::Json<HealthBody>, ApiError> {
    match state
        .engine
        .events
        .read_all(None, Direction::Backwards, 1)
        .await
    {
        Ok(_) => Ok(axum::Json(HealthBody {
            status: "ready".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::from(syros_engine::Error::unavailable(format!(
                "storage is not reachable: {}",
                err.message
            ))))
        }
    }
}

#[utoipa::path(
    operation_id = "metrics", get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The OpenAPI document.
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::json(),
    )
}
