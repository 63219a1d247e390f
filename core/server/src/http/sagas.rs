//! REST: sagas: start, get, list, cancel. Steps are executed by step runners over gRPC
//! (docs/sagas.md); this API starts and observes sagas. Follow a saga's transitions live by
//! subscribing to its audit stream `saga-<saga_id>` (WebSocket API or GraphQL).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use syros_engine::sagas::{RetryPolicy, Saga, SagaFilter, SagaState, StartSaga, StepDefinition};
use syros_engine::Error;
use utoipa::{IntoParams, ToSchema};

use axum::Extension;

use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::{duration_ms, rfc3339, AppState};
use crate::security::{Permission, Principal};

/// A retry policy. Absent fields take the defaults: 1000 ms initial interval, coefficient 2,
/// 60000 ms maximum interval, 3 attempts in total.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct RetryPolicyBody {
    pub initial_interval_ms: Option<u64>,
    pub backoff_coefficient: Option<f64>,
    pub maximum_interval_ms: Option<u64>,
    /// Total attempts including the first; 1 = no retry.
    pub maximum_attempts: Option<u32>,
    /// Error types (as reported by step runners) that are never retried.
    #[serde(default)]
    pub non_retryable_errors: Vec<String>,
}

impl From<RetryPolicyBody> for RetryPolicy {
    fn from(body: RetryPolicyBody) -> Self {
        let defaults = RetryPolicy::default();
        let initial = body
            .initial_interval_ms
            .unwrap_or(defaults.initial_interval_ms);
        RetryPolicy {
            initial_interval_ms: initial,
            backoff_coefficient: body
                .backoff_coefficient
                .unwrap_or(defaults.backoff_coefficient),
            maximum_interval_ms: body
                .maximum_interval_ms
                .unwrap_or(defaults.maximum_interval_ms.max(initial)),
            maximum_attempts: body.maximum_attempts.unwrap_or(defaults.maximum_attempts),
            non_retryable_errors: body.non_retryable_errors,
        }
    }
}

/// The effective retry policy of a saga or step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetryPolicyOut {
    pub initial_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub maximum_interval_ms: u64,
    pub maximum_attempts: u32,
    pub non_retryable_errors: Vec<String>,
}

impl From<RetryPolicy> for RetryPolicyOut {
    fn from(p: RetryPolicy) -> Self {
        RetryPolicyOut {
            initial_interval_ms: p.initial_interval_ms,
            backoff_coefficient: p.backoff_coefficient,
            maximum_interval_ms: p.maximum_interval_ms,
            maximum_attempts: p.maximum_attempts,
            non_retryable_errors: p.non_retryable_errors,
        }
    }
}

/// One step of a saga to start.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SagaStepBody {
    /// Unique within the saga.
    pub name: String,
    /// The service whose step runners execute the step.
    pub service: String,
    /// The handler that performs the step.
    pub action: String,
    /// The handler that undoes the step when a later step fails (none: nothing to undo).
    pub compensation: Option<String>,
    /// Time limit of one attempt in seconds (default 30; at most 1 day).
    #[schema(maximum = 86400)]
    pub timeout_seconds: Option<u64>,
    /// Time limit of one attempt in milliseconds.
    #[schema(maximum = 86400000)]
    pub timeout_ms: Option<u64>,
    /// Overrides the saga's retry policy for this step.
    pub retry_policy: Option<RetryPolicyBody>,
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
pub struct StartSagaBody {
    /// 1-256 bytes.
    pub name: String,
    /// 1 to 100 steps, run in order.
    pub steps: Vec<SagaStepBody>,
    /// Input handed to every step (any JSON; default `{}`).
    pub input: Option<Value>,
    /// Starting again with the same key returns the existing saga.
    pub idempotency_key: Option<String>,
    /// Retry policy of every step (default: see `RetryPolicyBody`).
    pub retry_policy: Option<RetryPolicyBody>,
}

/// One attempt to run a step's action or compensation.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepAttemptBody {
    pub attempt: u32,
    /// `action` or `compensation`.
    pub kind: String,
    pub started_at_ms: i64,
    /// 0 while running.
    pub finished_at_ms: i64,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
}

/// A step and what happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaStepOut {
    pub name: String,
    pub service: String,
    pub action: String,
    pub compensation: Option<String>,
    pub timeout_ms: u64,
    /// The step's own policy, when it overrides the saga's.
    pub retry_policy: Option<RetryPolicyOut>,
    /// `pending`, `running`, `completed`, `failed`, `compensating`, `compensated` or
    /// `compensation_failed`.
    pub state: String,
    /// The action's output once completed.
    pub output: Option<Value>,
    pub attempts: Vec<StepAttemptBody>,
}

/// A saga and everything that happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaBody {
    pub saga_id: String,
    pub name: String,
    /// `pending`, `running`, `compensating`, `completed`, `compensated`,
    /// `compensation_failed` or `cancelled`.
    pub state: String,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub retry_policy: RetryPolicyOut,
    pub steps: Vec<SagaStepOut>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Why the saga did not complete, if it did not.
    pub error: Option<String>,
    /// A cancel is waiting for a running action to finish.
    pub cancel_requested: bool,
    /// The event stream with the saga's transitions.
    pub audit_stream: String,
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

impl From<Saga> for SagaBody {
    fn from(saga: Saga) -> Self {
        SagaBody {
            audit_stream: format!("saga-{}", saga.saga_id),
            created_at: rfc3339(saga.created_at_ms),
            updated_at: rfc3339(saga.updated_at_ms),
            input: json_text(&saga.input),
            saga_id: saga.saga_id,
            name: saga.name,
            state: saga.state.as_str().to_string(),
            idempotency_key: saga.idempotency_key,
            retry_policy: saga.retry.into(),
            steps: saga
                .steps
                .into_iter()
                .map(|step| SagaStepOut {
                    name: step.definition.name,
                    service: step.definition.service,
                    action: step.definition.action,
                    compensation: step.definition.compensation,
                    timeout_ms: step.definition.timeout_ms,
                    retry_policy: step.definition.retry.map(Into::into),
                    state: step.state.as_str().to_string(),
                    output: step.output.as_deref().map(json_text),
                    attempts: step
                        .attempts
                        .into_iter()
                        .map(|a| StepAttemptBody {
                            attempt: a.attempt,
                            kind: a.kind.as_str().to_string(),
                            started_at_ms: a.started_at_ms,
                            finished_at_ms: a.finished_at_ms,
                            error_type: a.error_type,
                            error_message: a.error_message,
                        })
                        .collect(),
                })
                .collect(),
            created_at_ms: saga.created_at_ms,
            updated_at_ms: saga.updated_at_ms,
            error: saga.error,
            cancel_requested: saga.cancel_requested,
        }
    }
}

/// A page of sagas.
#[derive(Debug, Serialize, ToSchema)]
pub struct SagaListBody {
    /// Newest first.
    pub sagas: Vec<SagaBody>,
    /// Pass as `page_token` for the next page; `null` on the last page.
    pub next_page_token: Option<String>,
}

/// `?state=&name=&limit=&page_token=` of the list route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only sagas in this state.
    pub state: Option<String>,
    /// Only sagas with this name.
    pub name: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[param(maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The engine's start request from the REST body (also the saga file of `syros saga start`).
pub(crate) fn start_request(body: StartSagaBody) -> Result<StartSaga, ApiError> {
    let mut steps = Vec::with_capacity(body.steps.len());
    for step in body.steps {
        steps.push(StepDefinition {
            timeout_ms: duration_ms("timeout", step.timeout_ms, step.timeout_seconds)?.unwrap_or(0),
            name: step.name,
            service: step.service,
            action: step.action,
            compensation: step.compensation,
            retry: step.retry_policy.map(Into::into),
        });
    }
    Ok(StartSaga {
        name: body.name,
        steps,
        input: body.input.map(|v| v.to_string()).unwrap_or_default(),
        idempotency_key: body.idempotency_key.unwrap_or_default(),
        retry: body.retry_policy.map(Into::into),
    })
}

#[utoipa::path(
    operation_id = "start_saga", post, path = "/api/v1/sagas", tag = "sagas",
    request_body = StartSagaBody,
    responses(
        (status = 201, description = "Started (or the saga already started with this idempotency key)", body = SagaBody),
        (status = 400, description = "Invalid name, steps, input or policy", body = ErrorBody),
    )
)]
/// Start a saga; its steps run on step runners in order, compensated in reverse on failure.
pub async fn start(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(body): Json<StartSagaBody>,
) -> Result<impl IntoResponse, ApiError> {
    who.require(Permission::SagasStart, Some(&body.name))?;
    let saga = state.engine.sagas.start(start_request(body)?).await?;
    Ok((StatusCode::CREATED, axum::Json(SagaBody::from(saga))))
}

#[utoipa::path(
    operation_id = "list_sagas", get, path = "/api/v1/sagas", tag = "sagas",
    params(ListParams),
    responses(
        (status = 200, description = "Sagas, newest first", body = SagaListBody),
        (status = 400, description = "Invalid filter", body = ErrorBody),
    )
)]
/// List sagas, newest first, optionally by state and name.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<SagaListBody>, ApiError> {
    who.require(
        Permission::SagasRead,
        Some(params.name.as_deref().unwrap_or("")),
    )?;
    let wanted_state = match params.state.as_deref() {
        None | Some("") => None,
        Some(text) => Some(SagaState::parse(text).ok_or_else(|| {
            ApiError::from(Error::invalid(format!("unknown saga state {text:?}")))
        })?),
    };
    let filter = SagaFilter {
        state: wanted_state,
        name: params.name.filter(|n| !n.is_empty()),
        page_token: params.page_token,
        limit: params.limit.unwrap_or(0),
    };
    let page = state.engine.sagas.list(filter).await?;
    Ok(axum::Json(SagaListBody {
        sagas: page.sagas.into_iter().map(Into::into).collect(),
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    operation_id = "get_saga", get, path = "/api/v1/sagas/{saga_id}", tag = "sagas",
    params(("saga_id" = String, Path, description = "The saga")),
    responses(
        (status = 200, description = "The saga", body = SagaBody),
        (status = 404, description = "No such saga", body = ErrorBody),
    )
)]
/// A saga with its steps and attempts.
pub async fn get(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(saga_id): Path<String>,
) -> Result<axum::Json<SagaBody>, ApiError> {
    who.require(Permission::SagasRead, None)?;
    let saga = state.engine.sagas.get(&saga_id).await?;
    Ok(axum::Json(saga.into()))
}

#[utoipa::path(
    operation_id = "cancel_saga", post, path = "/api/v1/sagas/{saga_id}/cancel", tag = "sagas",
    params(("saga_id" = String, Path, description = "The saga")),
    responses(
        (status = 200, description = "Cancelling: completed steps are compensated", body = SagaBody),
        (status = 404, description = "No such saga", body = ErrorBody),
    )
)]
/// Cancel a saga: queued work is withdrawn, completed steps are compensated.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(saga_id): Path<String>,
) -> Result<axum::Json<SagaBody>, ApiError> {
    who.require(Permission::SagasCancel, None)?;
    crate::security::audit(&who.id, "saga_cancel", &saga_id);
    let saga = state.engine.sagas.cancel(&saga_id).await?;
    Ok(axum::Json(saga.into()))
}
