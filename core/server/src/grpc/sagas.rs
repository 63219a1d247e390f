//! `syros.v1.SagaService` over the engine's saga manager.

use std::sync::Arc;

use futures::StreamExt;
use syros_engine::sagas::{
    ClaimedTask, RetryPolicy, Saga, SagaFilter, SagaState, StartSaga, StepDefinition, TaskResult,
};
use syros_engine::{Engine, Error};
use syros_proto::syros::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use volo_grpc::{BoxStream, Request, Response, Status};

use super::{limit, status};
use crate::security::grpc::require;
use crate::security::Permission;

pub struct SagaApi {
    pub engine: Arc<Engine>,
}

/// A proto policy: zero fields take the defaults.
pub fn retry_policy(policy: Option<pb::RetryPolicy>) -> Option<RetryPolicy> {
    let policy = policy?;
    let defaults = RetryPolicy::default();
    Some(RetryPolicy {
        initial_interval_ms: match policy.initial_interval_ms {
            0 => defaults.initial_interval_ms,
            v => v,
        },
        backoff_coefficient: if policy.backoff_coefficient == 0.0 {
            defaults.backoff_coefficient
        } else {
            policy.backoff_coefficient
        },
        maximum_interval_ms: match policy.maximum_interval_ms {
            0 => defaults.maximum_interval_ms.max(policy.initial_interval_ms),
            v => v,
        },
        maximum_attempts: match policy.maximum_attempts {
            0 => defaults.maximum_attempts,
            v => v,
        },
        non_retryable_errors: policy
            .non_retryable_errors
            .iter()
            .map(|e| e.to_string())
            .collect(),
    })
}

fn proto_policy(policy: &RetryPolicy) -> pb::RetryPolicy {
    pb::RetryPolicy {
        initial_interval_ms: policy.initial_interval_ms,
        backoff_coefficient: policy.backoff_coefficient,
        maximum_interval_ms: policy.maximum_interval_ms,
        maximum_attempts: policy.maximum_attempts,
        non_retryable_errors: policy
            .non_retryable_errors
            .iter()
            .map(|e| e.clone().into())
            .collect(),
    }
}

fn state(state: SagaState) -> pb::SagaState {
    match state {
        SagaState::Pending => pb::SagaState::PENDING,
        SagaState::Running => pb::SagaState::RUNNING,
        SagaState::Compensating => pb::SagaState::COMPENSATING,
        SagaState::Completed => pb::SagaState::COMPLETED,
        SagaState::Compensated => pb::SagaState::COMPENSATED,
        SagaState::CompensationFailed => pb::SagaState::COMPENSATION_FAILED,
        SagaState::Cancelled => pb::SagaState::CANCELLED,
    }
}

fn state_filter(value: pb::SagaState) -> Result<Option<SagaState>, Status> {
    Ok(Some(match value {
        pb::SagaState::SAGA_STATE_UNSPECIFIED => return Ok(None),
        pb::SagaState::PENDING => SagaState::Pending,
        pb::SagaState::RUNNING => SagaState::Running,
        pb::SagaState::COMPENSATING => SagaState::Compensating,
        pb::SagaState::COMPLETED => SagaState::Completed,
        pb::SagaState::COMPENSATED => SagaState::Compensated,
        pb::SagaState::COMPENSATION_FAILED => SagaState::CompensationFailed,
        pb::SagaState::CANCELLED => SagaState::Cancelled,
        other => {
            return Err(status(Error::invalid(format!(
                "unknown saga state {}",
                other.inner()
            ))))
        }
    }))
}

fn step_definition(step: &StepDefinition) -> pb::SagaStepDefinition {
    pb::SagaStepDefinition {
        name: step.name.clone().into(),
        service: step.service.clone().into(),
        action: step.action.clone().into(),
        compensation: step.compensation.clone().unwrap_or_default().into(),
        timeout_seconds: u32::try_from(step.timeout_ms.div_ceil(1000)).unwrap_or(u32::MAX),
        retry_policy: step.retry.as_ref().map(proto_policy),
    }
}

/// The wire form of a saga.
pub fn saga(saga: Saga) -> pb::Saga {
    pb::Saga {
        saga_id: saga.saga_id.into(),
        name: saga.name.into(),
        state: state(saga.state),
        input_json: saga.input.into(),
        idempotency_key: saga.idempotency_key.unwrap_or_default().into(),
        steps: saga
            .steps
            .iter()
            .map(|step| pb::SagaStep {
                definition: Some(step_definition(&step.definition)),
                state: step.state.as_str().into(),
                output_json: step.output.clone().unwrap_or_default().into(),
                attempts: step
                    .attempts
                    .iter()
                    .map(|a| pb::StepAttempt {
                        attempt: a.attempt,
                        kind: a.kind.as_str().into(),
                        started_at_ms: a.started_at_ms,
                        finished_at_ms: a.finished_at_ms,
                        error_type: a.error_type.clone().unwrap_or_default().into(),
                        error_message: a.error_message.clone().unwrap_or_default().into(),
                    })
                    .collect(),
            })
            .collect(),
        created_at_ms: saga.created_at_ms,
        updated_at_ms: saga.updated_at_ms,
        error: saga.error.unwrap_or_default().into(),
    }
}

fn step_task(claimed: ClaimedTask) -> pb::StepTask {
    let task = &claimed.task;
    pb::StepTask {
        task_id: task.task_id.clone().into(),
        saga_id: task.saga_id.clone().into(),
        step_name: task.step_name.clone().into(),
        service: task.service.clone().into(),
        handler: task.handler.clone().into(),
        kind: task.kind.as_str().into(),
        attempt: task.attempt,
        idempotency_key: task.idempotency_key().into(),
        input_json: claimed.input.into(),
        previous_outputs_json: claimed.previous_outputs.into(),
        start_to_close_timeout_ms: task.timeout_ms,
        heartbeat_timeout_ms: 0,
    }
}

/// The engine's start request from the wire form.
pub fn start_request(req: pb::StartSagaRequest) -> StartSaga {
    StartSaga {
        name: req.name.to_string(),
        steps: req
            .steps
            .into_iter()
            .map(|s| StepDefinition {
                name: s.name.to_string(),
                service: s.service.to_string(),
                action: s.action.to_string(),
                compensation: (!s.compensation.is_empty()).then(|| s.compensation.to_string()),
                timeout_ms: u64::from(s.timeout_seconds) * 1000,
                retry: retry_policy(s.retry_policy),
            })
            .collect(),
        input: req.input_json.to_string(),
        idempotency_key: req.idempotency_key.to_string(),
        retry: retry_policy(req.retry_policy),
    }
}

impl pb::SagaService for SagaApi {
    async fn start(
        &self,
        req: Request<pb::StartSagaRequest>,
    ) -> Result<Response<pb::Saga>, Status> {
        require(&req, Permission::SagasStart, Some(&req.get_ref().name))?;
        let started = self
            .engine
            .sagas
            .start(start_request(req.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(saga(started)))
    }

    async fn get(&self, req: Request<pb::GetSagaRequest>) -> Result<Response<pb::Saga>, Status> {
        let found = self
            .engine
            .sagas
            .get(&req.into_inner().saga_id)
            .await
            .map_err(status)?;
        Ok(Response::new(saga(found)))
    }

    async fn list(
        &self,
        req: Request<pb::ListSagasRequest>,
    ) -> Result<Response<pb::ListSagasResponse>, Status> {
        require(&req, Permission::SagasRead, Some(&req.get_ref().name))?;
        let req = req.into_inner();
        let filter = SagaFilter {
            state: state_filter(req.state)?,
            name: (!req.name.is_empty()).then(|| req.name.to_string()),
            page_token: Some(req.page_token.to_string()),
            limit: limit(req.limit),
        };
        let page = self.engine.sagas.list(filter).await.map_err(status)?;
        Ok(Response::new(pb::ListSagasResponse {
            sagas: page.sagas.into_iter().map(saga).collect(),
            next_page_token: page.next_page_token.unwrap_or_default().into(),
        }))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelSagaRequest>,
    ) -> Result<Response<pb::Saga>, Status> {
        let principal = require(&req, Permission::SagasCancel, None)?;
        crate::security::audit(&principal.id, "saga_cancel", &req.get_ref().saga_id);
        let cancelled = self
            .engine
            .sagas
            .cancel(&req.into_inner().saga_id)
            .await
            .map_err(status)?;
        Ok(Response::new(saga(cancelled)))
    }

    async fn poll_tasks(
        &self,
        req: Request<pb::PollTasksRequest>,
    ) -> Result<Response<BoxStream<'static, Result<pb::StepTask, Status>>>, Status> {
        require(&req, Permission::SagasWork, Some(&req.get_ref().service))?;
        let req = req.into_inner();
        let max = usize::try_from(req.max_concurrent).unwrap_or(1).max(1);
        let feed = self
            .engine
            .sagas
            .task_feed(&req.service, &req.worker_id, max)
            .map_err(status)?;
        let stream = ReceiverStream::new(feed).map(|item| item.map(step_task).map_err(status));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn complete_task(
        &self,
        req: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        let req = req.into_inner();
        let accepted = self
            .engine
            .sagas
            .report(
                &req.task_id,
                TaskResult::Completed(req.output_json.to_string()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TaskAck { accepted }))
    }

    async fn fail_task(
        &self,
        req: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        let req = req.into_inner();
        let error_type = if req.error_type.is_empty() {
            "error".to_string()
        } else {
            req.error_type.to_string()
        };
        let result = TaskResult::Failed {
            error_type,
            message: req.error_message.to_string(),
            non_retryable: req.non_retryable,
        };
        let accepted = self
            .engine
            .sagas
            .report(&req.task_id, result)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TaskAck { accepted }))
    }

    async fn heartbeat_task(
        &self,
        req: Request<pb::HeartbeatTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        let accepted = self
            .engine
            .sagas
            .heartbeat(&req.into_inner().task_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TaskAck { accepted }))
    }
}
