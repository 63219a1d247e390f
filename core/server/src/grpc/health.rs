//! The standard `grpc.health.v1.Health` service. The overall status ("") and each Syros service
//! name report SERVING once storage is open, and NOT_SERVING while shutting down.

use futures::StreamExt;
use syros_proto::grpc::health::v1 as pb;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use volo_grpc::{BoxStream, Request, Response, Status};

use pb::health_check_response::ServingStatus;

/// Names a client may ask about, besides "" (the whole server).
pub const SERVICES: &[&str] = &[
    "syros.v1.LockService",
    "syros.v1.CacheService",
    "syros.v1.EventService",
    "syros.v1.SagaService",
];

pub struct HealthApi {
    pub serving: watch::Receiver<bool>,
}

fn known(service: &str) -> bool {
    service.is_empty() || SERVICES.contains(&service)
}

fn response(serving: bool) -> pb::HealthCheckResponse {
    pb::HealthCheckResponse {
        status: if serving {
            ServingStatus::SERVING
        } else {
            ServingStatus::NOT_SERVING
        },
    }
}

impl pb::Health for HealthApi {
    async fn check(
        &self,
        req: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        if !known(&service) {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        Ok(Response::new(response(*self.serving.borrow())))
    }

    async fn watch(
        &self,
        req: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<BoxStream<'static, Result<pb::HealthCheckResponse, Status>>>, Status> {
        let service = req.into_inner().service;
        if !known(&service) {
            let unknown = pb::HealthCheckResponse {
                status: ServingStatus::SERVICE_UNKNOWN,
            };
            return Ok(Response::new(Box::pin(futures::stream::once(async {
                Ok(unknown)
            }))));
        }
        let updates = WatchStream::new(self.serving.clone()).map(|serving| Ok(response(serving)));
        Ok(Response::new(Box::pin(updates)))
    }
}
