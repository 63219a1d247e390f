//! `syros.v1.CacheService` over the engine's cache manager.

use std::sync::Arc;

use syros_engine::Engine;
use syros_proto::syros::v1 as pb;
use volo_grpc::{Request, Response, Status};

use super::status;
use crate::security::grpc::require;
use crate::security::Permission;

pub struct CacheApi {
    pub engine: Arc<Engine>,
}

impl pb::CacheService for CacheApi {
    async fn get(
        &self,
        req: Request<pb::CacheGetRequest>,
    ) -> Result<Response<pb::CacheGetResponse>, Status> {
        require(&req, Permission::CacheRead, Some(&req.get_ref().key))?;
        let entry = self
            .engine
            .cache
            .get(&req.into_inner().key)
            .await
            .map_err(status)?;
        Ok(Response::new(match entry {
            Some(e) => pb::CacheGetResponse {
                found: true,
                value: e.value.into(),
                expires_at_ms: e.expires_at_ms.unwrap_or(0),
                tags: e.tags.into_iter().map(Into::into).collect(),
            },
            None => pb::CacheGetResponse::default(),
        }))
    }

    async fn set(
        &self,
        req: Request<pb::CacheSetRequest>,
    ) -> Result<Response<pb::CacheSetResponse>, Status> {
        require(&req, Permission::CacheWrite, Some(&req.get_ref().key))?;
        let req = req.into_inner();
        let tags = req.tags.into_iter().map(|t| t.to_string()).collect();
        let entry = self
            .engine
            .cache
            .set_once(
                &req.key,
                req.value.to_vec(),
                req.ttl_ms,
                tags,
                &req.request_id,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CacheSetResponse {
            expires_at_ms: entry.expires_at_ms.unwrap_or(0),
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::CacheDeleteRequest>,
    ) -> Result<Response<pb::CacheDeleteResponse>, Status> {
        require(&req, Permission::CacheWrite, Some(&req.get_ref().key))?;
        let deleted = self
            .engine
            .cache
            .delete(&req.into_inner().key)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CacheDeleteResponse { deleted }))
    }

    async fn invalidate_tag(
        &self,
        req: Request<pb::CacheInvalidateTagRequest>,
    ) -> Result<Response<pb::CacheInvalidateTagResponse>, Status> {
        require(&req, Permission::CacheWrite, Some(&req.get_ref().tag))?;
        let removed = self
            .engine
            .cache
            .invalidate_tag(&req.into_inner().tag)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CacheInvalidateTagResponse { removed }))
    }
}
