//! REST: locks. Keys may contain `/`, so a key never appears in a path: status and listing take
//! it as a query parameter, force-release in the body. Lease ids (server-made) are path segments.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use syros_engine::{AcquireLock, AcquireOutcome, Lease, LockChange};
use utoipa::{IntoParams, ToSchema};

use axum::Extension;

use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::{duration_ms, rfc3339, AppState};
use crate::security::{Permission, Principal};

/// A held lock.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeaseBody {
    /// Id to renew or release the lease with.
    pub lease_id: String,
    pub key: String,
    pub owner: String,
    /// Strictly increasing across every lease the server grants; pass it to the resource you
    /// protect so it can reject a stale holder.
    pub fencing_token: u64,
    /// Milliseconds since the Unix epoch.
    pub acquired_at_ms: i64,
    /// Milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// `acquired_at_ms` as RFC 3339 (UTC).
    pub acquired_at: String,
    /// `expires_at_ms` as RFC 3339 (UTC).
    pub expires_at: String,
}

impl From<Lease> for LeaseBody {
    fn from(lease: Lease) -> Self {
        LeaseBody {
            acquired_at: rfc3339(lease.acquired_at_ms),
            expires_at: rfc3339(lease.expires_at_ms),
            lease_id: lease.lease_id,
            key: lease.key,
            owner: lease.owner,
            fencing_token: lease.fencing_token,
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: lease.expires_at_ms,
        }
    }
}

/// A lock change, as the WebSocket API sends it (docs/websocket-api.md).
#[derive(Debug, Clone, Serialize)]
pub struct LockChangeBody {
    /// `acquired`, `renewed`, `released`, `force_released` or `expired`.
    pub kind: &'static str,
    pub key: String,
    /// `null` when the server that made the change did not say.
    pub owner: Option<String>,
    pub fencing_token: Option<u64>,
    pub lease_id: Option<String>,
    /// When the lease ends (`acquired`, `renewed`) or ended (`expired`); `null` for releases.
    pub expires_at_ms: Option<i64>,
    /// `expires_at_ms` as RFC 3339 (UTC).
    pub expires_at: Option<String>,
    /// When the server published the change.
    pub changed_at_ms: i64,
    /// `changed_at_ms` as RFC 3339 (UTC).
    pub changed_at: String,
}

impl From<LockChange> for LockChangeBody {
    fn from(change: LockChange) -> Self {
        LockChangeBody {
            kind: change.kind.as_str(),
            expires_at: change.expires_at_ms.map(rfc3339),
            changed_at: rfc3339(change.at_ms),
            key: change.key,
            owner: change.owner,
            fencing_token: change.fencing_token,
            lease_id: change.lease_id,
            expires_at_ms: change.expires_at_ms,
            changed_at_ms: change.at_ms,
        }
    }
}

/// Acquire a lock. Give the TTL as `ttl_seconds` or `ttl_ms`, and optionally how long to wait
/// for a held lock as `wait_timeout_seconds` or `wait_timeout_ms` (default: do not wait).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"key": "inventory_process_123", "owner": "worker_service_01", "ttl_seconds": 30}))]
pub struct AcquireLockBody {
    /// The lock's name (1-512 bytes, any characters but control characters).
    #[schema(min_length = 1, max_length = 512)]
    pub key: String,
    /// Who holds it (1-256 bytes); informational.
    #[schema(min_length = 1, max_length = 256)]
    pub owner: String,
    /// Lease duration in seconds (1 s to 24 h).
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
    /// Lease duration in milliseconds (100 ms to 24 h).
    #[schema(minimum = 100, maximum = 86400000)]
    pub ttl_ms: Option<u64>,
    /// How long to wait for a held lock, in seconds (at most 300).
    #[schema(maximum = 300)]
    pub wait_timeout_seconds: Option<u64>,
    /// How long to wait for a held lock, in milliseconds (at most 300000).
    #[schema(maximum = 300000)]
    pub wait_timeout_ms: Option<u64>,
    /// Makes a retried acquire return the same lease instead of a second one (at most 128
    /// bytes).
    #[schema(max_length = 128)]
    pub request_id: Option<String>,
}

/// Renew a lease. Give the new TTL (counted from now) as `ttl_seconds` or `ttl_ms`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"ttl_seconds": 30}))]
pub struct RenewLockBody {
    /// New lease duration in seconds, from now.
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
    /// New lease duration in milliseconds, from now.
    #[schema(minimum = 100, maximum = 86400000)]
    pub ttl_ms: Option<u64>,
}

/// Which lock to drop.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"key": "inventory_process_123"}))]
pub struct ForceReleaseBody {
    #[schema(min_length = 1, max_length = 512)]
    pub key: String,
}

/// The holder of one key.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockStatusBody {
    pub key: String,
    pub held: bool,
    /// The current lease, `null` when the key is free.
    pub lease: Option<LeaseBody>,
}

/// Held locks.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockListBody {
    pub leases: Vec<LeaseBody>,
}

/// The outcome of a force-release.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForceReleasedBody {
    /// Whether a lease was dropped.
    pub released: bool,
    /// The dropped lease.
    pub lease: Option<LeaseBody>,
}

/// `?key=` of the status route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusParams {
    /// The lock's key (URL-encoded).
    #[param(min_length = 1, max_length = 512)]
    pub key: String,
}

/// `?prefix=&limit=` of the list route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys starting with this (default: all).
    pub prefix: Option<String>,
    /// At most this many leases (default 1000, at most 10000).
    #[param(maximum = 10000)]
    pub limit: Option<usize>,
}

#[utoipa::path(
    operation_id = "acquire_lock", post, path = "/api/v1/locks", tag = "locks",
    request_body = AcquireLockBody,
    responses(
        (status = 201, description = "Acquired", body = LeaseBody),
        (status = 409, description = "Still held by someone else when the wait ended (`lock_timeout`); `details.holder` is the current lease", body = ErrorBody),
        (status = 400, description = "Invalid key, owner, TTL or wait", body = ErrorBody),
    )
)]
/// Acquire a lock, waiting up to the wait timeout in FIFO order.
pub async fn acquire(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(body): Json<AcquireLockBody>,
) -> Result<impl IntoResponse, ApiError> {
    who.require(Permission::LocksAcquire, Some(&body.key))?;
    let ttl_ms = duration_ms("ttl", body.ttl_ms, body.ttl_seconds)?
        .ok_or_else(|| ApiError::invalid("ttl_seconds or ttl_ms is required"))?;
    let wait_timeout_ms = duration_ms(
        "wait_timeout",
        body.wait_timeout_ms,
        body.wait_timeout_seconds,
    )?
    .unwrap_or(0);
    let key = body.key.clone();
    let outcome = state
        .engine
        .locks
        .acquire(AcquireLock {
            key: body.key,
            owner: body.owner,
            ttl_ms,
            wait_timeout_ms,
            request_id: body.request_id.unwrap_or_default(),
        })
        .await;
    match outcome? {
        AcquireOutcome::Acquired(lease) => {
            Ok((StatusCode::CREATED, axum::Json(LeaseBody::from(lease))))
        }
        AcquireOutcome::TimedOut { holder } => Err(lock_timeout(&key, holder)),
    }
}

/// The 409 `lock_timeout` answer of an acquire whose wait ended with the lock held by someone
/// else: the same code as the client core's (docs/errors.md).
pub fn lock_timeout(key: &str, holder: Option<Lease>) -> ApiError {
    let message = match &holder {
        Some(h) => format!("lock {key:?} is held by {:?}", h.owner),
        None => format!("lock {key:?} was not acquired in time"),
    };
    let holder = holder
        .map(|h| serde_json::to_value(LeaseBody::from(h)).unwrap_or_default())
        .unwrap_or_default();
    ApiError::from(syros_engine::Error::new(
        syros_engine::ErrorKind::LockTimeout,
        message,
    ))
    .with_detail("key", key)
    .with_detail("holder", holder)
}

#[utoipa::path(
    operation_id = "renew_lock", post, path = "/api/v1/locks/{lease_id}/renew", tag = "locks",
    params(("lease_id" = String, Path, description = "The lease to renew")),
    request_body = RenewLockBody,
    responses(
        (status = 200, description = "Renewed", body = LeaseBody),
        (status = 409, description = "The lease is no longer held (`lock_not_held`)", body = ErrorBody),
        (status = 400, description = "Invalid TTL", body = ErrorBody),
    )
)]
/// Extend a held lease to the given TTL from now.
pub async fn renew(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(lease_id): Path<String>,
    Json(body): Json<RenewLockBody>,
) -> Result<axum::Json<LeaseBody>, ApiError> {
    who.require(Permission::LocksAcquire, None)?;
    let ttl_ms = duration_ms("ttl", body.ttl_ms, body.ttl_seconds)?
        .ok_or_else(|| ApiError::invalid("ttl_seconds or ttl_ms is required"))?;
    let lease = state.engine.locks.renew(&lease_id, ttl_ms).await?;
    Ok(axum::Json(lease.into()))
}

#[utoipa::path(
    operation_id = "release_lock", delete, path = "/api/v1/locks/{lease_id}", tag = "locks",
    params(("lease_id" = String, Path, description = "The lease to release")),
    responses(
        (status = 200, description = "Released; the body is the lease that ended", body = LeaseBody),
        (status = 409, description = "The lease is no longer held (`lock_not_held`)", body = ErrorBody),
    )
)]
/// Release a held lease; the next waiter gets the lock at once.
pub async fn release(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(lease_id): Path<String>,
) -> Result<axum::Json<LeaseBody>, ApiError> {
    who.require(Permission::LocksAcquire, None)?;
    let lease = state.engine.locks.release(&lease_id).await?;
    Ok(axum::Json(lease.into()))
}

#[utoipa::path(
    operation_id = "lock_status", get, path = "/api/v1/locks/status", tag = "locks",
    params(StatusParams),
    responses(
        (status = 200, description = "The holder, if any", body = LockStatusBody),
        (status = 400, description = "Invalid key", body = ErrorBody),
    )
)]
/// Who holds a key.
pub async fn status(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<StatusParams>,
) -> Result<axum::Json<LockStatusBody>, ApiError> {
    who.require(Permission::LocksRead, Some(&params.key))?;
    let lease = state.engine.locks.status(&params.key).await?;
    Ok(axum::Json(LockStatusBody {
        key: params.key,
        held: lease.is_some(),
        lease: lease.map(Into::into),
    }))
}

#[utoipa::path(
    operation_id = "list_locks", get, path = "/api/v1/locks", tag = "locks",
    params(ListParams),
    responses(
        (status = 200, description = "Held locks, by key", body = LockListBody),
        (status = 400, description = "Invalid prefix or limit", body = ErrorBody),
    )
)]
/// List held locks whose key starts with a prefix.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<LockListBody>, ApiError> {
    who.require(
        Permission::LocksRead,
        Some(params.prefix.as_deref().unwrap_or("")),
    )?;
    let leases = state
        .engine
        .locks
        .list(
            params.prefix.as_deref().unwrap_or(""),
            params.limit.unwrap_or(0),
        )
        .await?;
    Ok(axum::Json(LockListBody {
        leases: leases.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    operation_id = "force_release_lock", post, path = "/api/v1/admin/locks/force-release", tag = "admin",
    request_body = ForceReleaseBody,
    responses(
        (status = 200, description = "The dropped lease, if the key was held", body = ForceReleasedBody),
        (status = 400, description = "Invalid key", body = ErrorBody),
    )
)]
/// Admin: drop whatever lease holds a key, whoever owns it.
pub async fn force_release(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Json(body): Json<ForceReleaseBody>,
) -> Result<axum::Json<ForceReleasedBody>, ApiError> {
    who.require(Permission::LocksAdmin, Some(&body.key))?;
    crate::security::audit(&who.id, "force_release", &body.key);
    let dropped = state.engine.locks.force_release(&body.key).await?;
    if let Some(lease) = &dropped {
        tracing::info!(key = %lease.key, owner = %lease.owner, "lock force-released over REST");
    }
    Ok(axum::Json(ForceReleasedBody {
        released: dropped.is_some(),
        lease: dropped.map(Into::into),
    }))
}
