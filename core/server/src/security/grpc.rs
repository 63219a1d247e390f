//! The gRPC side of security: a Volo layer that authenticates every call (the health service
//! excepted), applies the rate limits and the permission of the method's family, and hands the
//! [`Principal`] to the handler in the request's extensions, where [`principal`] finds it for
//! resource checks.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use volo::{Layer, Service};
use volo_grpc::context::ServerContext;
use volo_grpc::metadata::MetadataValue;
use volo_grpc::{Code, Request, Status};

use super::{Denied, Permission, Principal, Security};

/// The permission a method needs at the least (resource checks come on top in the handler).
pub fn method_permission(method: &str) -> Option<Permission> {
    let (service, name) = method.strip_prefix("/syros.v1.")?.split_once('/')?;
    Some(match (service, name) {
        // A lock session carries acquire / renew / release frames, each checked on its own
        // ([`FrameAuth`]).
        ("LockService", "Acquire" | "Renew" | "Release" | "Session" | "BatchedSession") => {
            Permission::LocksAcquire
        }
        ("LockService", "Status" | "List") => Permission::LocksRead,
        ("LockService", "ForceRelease") => Permission::LocksAdmin,
        ("CacheService", "Get") => Permission::CacheRead,
        ("CacheService", _) => Permission::CacheWrite,
        ("EventService", "Append") => Permission::EventsAppend,
        ("EventService", _) => Permission::EventsRead,
        ("SagaService", "Start") => Permission::SagasStart,
        ("SagaService", "Get" | "List") => Permission::SagasRead,
        ("SagaService", "Cancel") => Permission::SagasCancel,
        ("SagaService", _) => Permission::SagasWork,
        _ => return None,
    })
}

/// The gRPC status of a refusal, with the Syros code in `syros-error-code`.
pub fn status(denied: Denied) -> Status {
    let code = match denied {
        Denied::Unauthenticated(_) => Code::Unauthenticated,
        Denied::Forbidden { .. } => Code::PermissionDenied,
        Denied::RateLimited(_) => Code::ResourceExhausted,
    };
    let mut status = Status::new(code, denied.message());
    status.metadata_mut().insert(
        crate::grpc::ERROR_CODE_HEADER,
        MetadataValue::from_static(denied.code()),
    );
    if let Denied::RateLimited(after) = denied {
        if let Ok(value) = super::retry_after_seconds(after)
            .to_string()
            .parse::<MetadataValue<_>>()
        {
            status.metadata_mut().insert("retry-after", value);
        }
    }
    status
}

/// The caller of a request the layer let through.
pub fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| status(Denied::Unauthenticated("no principal".into())))
}

/// Check that the caller of `req` has `permission` on `resource` (see [`Principal::require`]).
pub fn require<T>(
    req: &Request<T>,
    permission: Permission,
    resource: Option<&str>,
) -> Result<Principal, Status> {
    let principal = principal(req)?;
    principal.require(permission, resource).map_err(status)?;
    Ok(principal)
}

/// The method whose request frames are operations of their own (grpc/locks.rs).
pub const LOCK_SESSION_METHOD: &str = "/syros.v1.LockService/Session";
/// [`LOCK_SESSION_METHOD`] with several frames per message.
pub const BATCHED_LOCK_SESSION_METHOD: &str = "/syros.v1.LockService/BatchedSession";

/// Whether `method` is a lock session (either form): its frames are operations of their own.
pub fn is_lock_session(method: &str) -> bool {
    method == LOCK_SESSION_METHOD || method == BATCHED_LOCK_SESSION_METHOD
}

/// The decision the layer makes for a whole unary call, made again for each frame of a lock
/// session: the per-IP and per-principal rate limits count the frame as one request, then the
/// principal must hold the permission on the resource. The stream's credential is checked again
/// when the last check is older than [`API_KEY_RECHECK`](super::API_KEY_RECHECK), so a revoked
/// API key or an expired token ends a long-lived session's rights as it ends unary calls'. The
/// layer puts it in the extensions of lock session calls ([`is_lock_session`]).
pub struct FrameAuth {
    security: Arc<Security>,
    ip: Option<IpAddr>,
    credential: Option<String>,
    /// The caller, and when its credential was last checked.
    checked: Mutex<(Instant, Principal)>,
}

impl FrameAuth {
    /// Count one operation against the rate limits and check `permission` on `resource`.
    #[allow(clippy::result_large_err)]
    pub async fn check(
        &self,
        permission: Permission,
        resource: Option<&str>,
    ) -> Result<(), Status> {
        self.security.rate_check_ip(self.ip).map_err(status)?;
        let principal = self.principal().await?;
        self.security
            .rate_check(&principal, Some(permission.family()))
            .map_err(status)?;
        principal.require(permission, resource).map_err(status)
    }

    #[allow(clippy::result_large_err)]
    async fn principal(&self) -> Result<Principal, Status> {
        let (at, principal) = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if at.elapsed() < super::API_KEY_RECHECK {
            return Ok(principal);
        }
        let principal = self
            .security
            .authenticate(self.credential.as_deref())
            .await
            .map_err(status)?;
        *self.checked.lock().unwrap_or_else(|e| e.into_inner()) =
            (Instant::now(), principal.clone());
        Ok(principal)
    }
}

/// Authenticates every call.
#[derive(Clone)]
pub struct AuthLayer(pub Arc<Security>);

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    security: Arc<Security>,
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(self, inner: S) -> Self::Service {
        Auth {
            inner,
            security: self.0,
        }
    }
}

impl<S, T> Service<ServerContext, Request<T>> for Auth<S>
where
    S: Service<ServerContext, Request<T>, Error = Status> + Send + Sync,
    T: Send + 'static,
{
    type Response = S::Response;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        mut req: Request<T>,
    ) -> Result<Self::Response, Self::Error> {
        let method = cx.rpc_info.method().to_string();
        if method.starts_with("/grpc.health.v1.Health/") {
            return self.inner.call(cx, req).await;
        }
        let ip: Option<IpAddr> = req
            .metadata()
            .get(volo_grpc::metadata::HEADER_TRANS_REMOTE_ADDR)
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
            .or_else(|| {
                cx.rpc_info
                    .caller()
                    .address()
                    .and_then(|a| a.ip_addr().map(|s| s.ip()))
            });
        let credential = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.security.rate_check_ip(ip).map_err(status)?;
        let principal = self
            .security
            .authenticate(credential.as_deref())
            .await
            .map_err(status)?;
        let permission = method_permission(&method);
        self.security
            .rate_check(&principal, permission.map(Permission::family))
            .map_err(status)?;
        if let Some(permission) = permission {
            principal.require(permission, None).map_err(status)?;
        }
        if is_lock_session(&method) {
            req.extensions_mut().insert(Arc::new(FrameAuth {
                security: self.security.clone(),
                ip,
                credential: credential.clone(),
                checked: Mutex::new((Instant::now(), principal.clone())),
            }));
        }
        req.extensions_mut().insert(principal);
        self.inner.call(cx, req).await
    }
}
