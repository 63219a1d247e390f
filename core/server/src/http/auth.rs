//! The one place where authentication plugs in for REST, GraphQL and the WebSocket API.
//!
//! Today every request passes: the server refuses to bind a non-loopback address unless
//! SYROS_ALLOW_UNAUTHENTICATED is set. The security issue fills this middleware in (JWT and API
//! keys); the gRPC server gets the equivalent Volo layer.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware in front of every API route (not `/health`, `/ready`, `/metrics`,
/// `/openapi.json`). Rejecting a request here must answer with an `ApiError` (401/403).
pub async fn authenticate(request: Request, next: Next) -> Response {
    next.run(request).await
}
