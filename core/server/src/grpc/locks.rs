//! `syros.v1.LockService` over the engine's lock manager.

use std::sync::Arc;

use syros_engine::{AcquireLock, AcquireOutcome, Engine};
use syros_proto::syros::v1 as pb;
use volo_grpc::{BoxStream, Request, Response, Status};

use super::layers::ConnectionWaiters;
use super::{limit, status};
use crate::security::grpc::{require, FrameAuth};
use crate::security::Permission;

pub struct LockApi {
    pub engine: Arc<Engine>,
}

pub fn lease(lease: syros_engine::Lease) -> pb::Lease {
    pb::Lease {
        lease_id: lease.lease_id.into(),
        key: lease.key.into(),
        owner: lease.owner.into(),
        fencing_token: lease.fencing_token,
        acquired_at_ms: lease.acquired_at_ms,
        expires_at_ms: lease.expires_at_ms,
    }
}

/// Acquire, once the caller is allowed to: the unary RPC and the session frame.
pub(crate) async fn acquire(
    engine: &Engine,
    req: pb::AcquireLockRequest,
) -> Result<pb::AcquireLockResponse, Status> {
    let outcome = engine
        .locks
        .acquire(AcquireLock {
            key: req.key.to_string(),
            owner: req.owner.to_string(),
            ttl_ms: req.ttl_ms,
            wait_timeout_ms: req.wait_timeout_ms,
            request_id: req.request_id.to_string(),
        })
        .await;
    Ok(match outcome.map_err(status)? {
        AcquireOutcome::Acquired(l) => pb::AcquireLockResponse {
            acquired: true,
            lease: Some(lease(l)),
            holder: None,
        },
        AcquireOutcome::TimedOut { holder } => pb::AcquireLockResponse {
            acquired: false,
            lease: None,
            holder: holder.map(lease),
        },
    })
}

/// Renew, once the caller is allowed to.
pub(crate) async fn renew(
    engine: &Engine,
    req: pb::RenewLockRequest,
) -> Result<pb::RenewLockResponse, Status> {
    let renewed = engine
        .locks
        .renew(&req.lease_id, req.ttl_ms)
        .await
        .map_err(status)?;
    Ok(pb::RenewLockResponse {
        lease: Some(lease(renewed)),
    })
}

/// Release, once the caller is allowed to. The engine finishes a release it started even when
/// this future is dropped.
pub(crate) async fn release(
    engine: &Engine,
    req: pb::ReleaseLockRequest,
) -> Result<pb::ReleaseLockResponse, Status> {
    let released = engine.locks.release(&req.lease_id).await.map_err(status)?;
    Ok(pb::ReleaseLockResponse {
        key: released.key.into(),
    })
}

impl pb::LockService for LockApi {
    async fn acquire(
        &self,
        req: Request<pb::AcquireLockRequest>,
    ) -> Result<Response<pb::AcquireLockResponse>, Status> {
        require(&req, Permission::LocksAcquire, Some(&req.get_ref().key))?;
        acquire(&self.engine, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn renew(
        &self,
        req: Request<pb::RenewLockRequest>,
    ) -> Result<Response<pb::RenewLockResponse>, Status> {
        renew(&self.engine, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn release(
        &self,
        req: Request<pb::ReleaseLockRequest>,
    ) -> Result<Response<pb::ReleaseLockResponse>, Status> {
        release(&self.engine, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn status(
        &self,
        req: Request<pb::LockStatusRequest>,
    ) -> Result<Response<pb::LockStatusResponse>, Status> {
        require(&req, Permission::LocksRead, Some(&req.get_ref().key))?;
        let holder = self
            .engine
            .locks
            .status(&req.into_inner().key)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LockStatusResponse {
            held: holder.is_some(),
            lease: holder.map(lease),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListLocksRequest>,
    ) -> Result<Response<pb::ListLocksResponse>, Status> {
        require(&req, Permission::LocksRead, Some(&req.get_ref().prefix))?;
        let req = req.into_inner();
        let leases = self
            .engine
            .locks
            .list(&req.prefix, limit(req.limit))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListLocksResponse {
            leases: leases.into_iter().map(lease).collect(),
        }))
    }

    async fn session(
        &self,
        req: Request<volo_grpc::RecvStream<pb::LockSessionRequest>>,
    ) -> Result<Response<BoxStream<'static, Result<pb::LockSessionResponse, Status>>>, Status> {
        let (auth, waiters, frames) = session_parts(req)?;
        Ok(Response::new(super::lock_session::serve(
            self.engine.clone(),
            auth,
            waiters,
            frames,
        )))
    }

    async fn batched_session(
        &self,
        req: Request<volo_grpc::RecvStream<pb::LockSessionRequests>>,
    ) -> Result<Response<BoxStream<'static, Result<pb::LockSessionResponses, Status>>>, Status>
    {
        let (auth, waiters, frames) = session_parts(req)?;
        Ok(Response::new(super::lock_session::serve_batched(
            self.engine.clone(),
            auth,
            waiters,
            frames,
        )))
    }

    async fn force_release(
        &self,
        req: Request<pb::ForceReleaseLockRequest>,
    ) -> Result<Response<pb::ForceReleaseLockResponse>, Status> {
        let principal = require(&req, Permission::LocksAdmin, Some(&req.get_ref().key))?;
        crate::security::audit(&principal.id, "force_release", &req.get_ref().key);
        let dropped = self
            .engine
            .locks
            .force_release(&req.into_inner().key)
            .await
            .map_err(status)?;
        if let Some(l) = &dropped {
            tracing::info!(key = %l.key, owner = %l.owner, "lock force-released");
        }
        Ok(Response::new(pb::ForceReleaseLockResponse {
            released: dropped.is_some(),
            lease: dropped.map(lease),
        }))
    }
}

/// What the layers put in a lock session call's extensions (its per-frame authorization and the
/// connection's waiter limit), and its incoming stream.
#[allow(clippy::result_large_err)]
fn session_parts<T>(
    req: Request<T>,
) -> Result<(Arc<FrameAuth>, Option<ConnectionWaiters>, T), Status> {
    let auth = req
        .extensions()
        .get::<Arc<FrameAuth>>()
        .cloned()
        .ok_or_else(|| Status::internal("the lock session has no frame authorization"))?;
    let waiters = req.extensions().get::<ConnectionWaiters>().cloned();
    Ok((auth, waiters, req.into_inner()))
}
