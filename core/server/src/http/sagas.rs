//! REST: sagas. The routes and their request shape exist; the orchestrator is not built yet, so
//! each answers 501 `unimplemented` instead of pretending.

use serde::Deserialize;
use syros_engine::{Error, ErrorKind};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};

/// One step of a saga.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SagaStepBody {
    pub name: String,
    /// The service whose step runner executes the step.
    pub service: String,
    /// The handler for the step (`service.action`).
    pub action: String,
    /// The handler that undoes the step when a later step fails.
    pub compensation: Option<String>,
    pub timeout_seconds: Option<u64>,
}

/// Start a saga.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "order_fulfillment_saga",
    "steps": [
        {"name": "reserve_inventory", "service": "inventory_service", "action": "reserve",
         "compensation": "release_inventory", "timeout_seconds": 10},
        {"name": "charge_payment", "service": "payment_service", "action": "charge",
         "compensation": "refund_payment", "timeout_seconds": 15}
    ]
}))]
#[allow(dead_code)]
pub struct StartSagaBody {
    pub name: String,
    pub steps: Vec<SagaStepBody>,
    /// Input handed to the first step.
    pub input: Option<serde_json::Value>,
    /// Starting twice with the same key starts one saga.
    pub idempotency_key: Option<String>,
}

fn not_yet() -> ApiError {
    Error::new(
        ErrorKind::Unimplemented,
        "sagas are not available in this server version yet",
    )
    .into()
}

#[utoipa::path(
    operation_id = "start_saga", post, path = "/api/v1/sagas", tag = "sagas",
    request_body = StartSagaBody,
    responses((status = 501, description = "Not available yet (`unimplemented`)", body = ErrorBody))
)]
/// Start a saga (not available yet: 501).
pub async fn start() -> ApiError {
    not_yet()
}

#[utoipa::path(
    operation_id = "list_sagas", get, path = "/api/v1/sagas", tag = "sagas",
    responses((status = 501, description = "Not available yet (`unimplemented`)", body = ErrorBody))
)]
/// List sagas (not available yet: 501).
pub async fn list() -> ApiError {
    not_yet()
}

#[utoipa::path(
    operation_id = "get_saga", get, path = "/api/v1/sagas/{saga_id}", tag = "sagas",
    params(("saga_id" = String, Path, description = "The saga")),
    responses((status = 501, description = "Not available yet (`unimplemented`)", body = ErrorBody))
)]
/// Get a saga (not available yet: 501).
pub async fn get() -> ApiError {
    not_yet()
}

#[utoipa::path(
    operation_id = "cancel_saga", post, path = "/api/v1/sagas/{saga_id}/cancel", tag = "sagas",
    params(("saga_id" = String, Path, description = "The saga")),
    responses((status = 501, description = "Not available yet (`unimplemented`)", body = ErrorBody))
)]
/// Cancel a saga (not available yet: 501).
pub async fn cancel() -> ApiError {
    not_yet()
}
