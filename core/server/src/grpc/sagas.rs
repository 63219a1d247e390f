//! `syros.v1.SagaService`: the contract is defined; the orchestrator is not built yet, so every
//! call answers UNIMPLEMENTED with a clear message instead of pretending.

use syros_engine::{Error, ErrorKind};
use syros_proto::syros::v1 as pb;
use volo_grpc::{BoxStream, Request, Response, Status};

use super::status;

pub struct SagaApi;

fn not_yet() -> Status {
    status(Error::new(
        ErrorKind::Unimplemented,
        "sagas are not available in this server version yet",
    ))
}

impl pb::SagaService for SagaApi {
    async fn start(&self, _: Request<pb::StartSagaRequest>) -> Result<Response<pb::Saga>, Status> {
        Err(not_yet())
    }
    async fn get(&self, _: Request<pb::GetSagaRequest>) -> Result<Response<pb::Saga>, Status> {
        Err(not_yet())
    }
    async fn list(
        &self,
        _: Request<pb::ListSagasRequest>,
    ) -> Result<Response<pb::ListSagasResponse>, Status> {
        Err(not_yet())
    }
    async fn cancel(
        &self,
        _: Request<pb::CancelSagaRequest>,
    ) -> Result<Response<pb::Saga>, Status> {
        Err(not_yet())
    }
    async fn poll_tasks(
        &self,
        _: Request<pb::PollTasksRequest>,
    ) -> Result<Response<BoxStream<'static, Result<pb::StepTask, Status>>>, Status> {
        Err(not_yet())
    }
    async fn complete_task(
        &self,
        _: Request<pb::CompleteTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        Err(not_yet())
    }
    async fn fail_task(
        &self,
        _: Request<pb::FailTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        Err(not_yet())
    }
    async fn heartbeat_task(
        &self,
        _: Request<pb::HeartbeatTaskRequest>,
    ) -> Result<Response<pb::TaskAck>, Status> {
        Err(not_yet())
    }
}
