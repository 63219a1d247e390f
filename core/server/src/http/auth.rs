//! Authentication for REST, GraphQL and the WebSocket APIs: one axum middleware in front of
//! every API route that asks [`crate::security`] who is calling, applies the rate limits and
//! hands the [`Principal`] to the handlers as a request extension. Handlers (and GraphQL
//! resolvers) check the permission of what they touch with [`Principal::require`].
//!
//! The credential is `authorization: Bearer <JWT or API key>`; a WebSocket handshake, which a
//! browser cannot give headers, may instead carry it as the `token` query parameter, or leave
//! it to the connection's first message (see [`authenticate_or_defer`]).
//! `/health`, `/ready` and `/openapi.json` stay open; `/metrics` is open unless
//! `METRICS_REQUIRE_AUTH` is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::security::{Denied, Permission, Security};

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        let status = match denied {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden { .. } => StatusCode::FORBIDDEN,
            Denied::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut err = ApiError::new(status, denied.code(), denied.message());
        if let Denied::Forbidden { permission, .. } = &denied {
            err = err.with_detail("permission", permission.name());
        }
        err
    }
}

/// The answer to a refused request: 401 with `WWW-Authenticate`, 403, or 429 with
/// `Retry-After`.
pub fn refusal(denied: Denied) -> Response {
    let extra = match &denied {
        Denied::Unauthenticated(_) => Some((header::WWW_AUTHENTICATE, "Bearer".to_string())),
        Denied::RateLimited(after) => Some((
            header::RETRY_AFTER,
            crate::security::retry_after_seconds(*after).to_string(),
        )),
        Denied::Forbidden { .. } => None,
    };
    let mut response = ApiError::from(denied).into_response();
    if let Some((name, value)) = extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The `token` query parameter of a WebSocket handshake.
fn query_token(request: &Request) -> Option<String> {
    let is_upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return None;
    }
    request.uri().query()?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("token=")?;
        // Tokens and API keys are URL-safe; decode the few escapes a client might still send.
        Some(
            value
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "="),
        )
    })
}

/// The peer's IP address, for the per-IP rate limit.
fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The operation family of a REST path, for per-family rate limits.
fn family_of(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("/api/v1/")?;
    Some(match rest.split('/').next()? {
        "locks" | "admin" => "locks",
        "cache" => "cache",
        "events" => "events",
        "sagas" => "sagas",
        _ => return None,
    })
}

/// Middleware in front of every API route (not `/health`, `/ready`, `/openapi.json`, nor the
/// GraphQL playground page, which holds no data).
pub async fn authenticate(
    State(security): State<Arc<Security>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::GET
        && request.uri().path() == "/graphql"
        && !request.headers().contains_key(header::UPGRADE)
    {
        return next.run(request).await;
    }
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_token(&request));
    if let Err(denied) = security.rate_check_ip(client_ip(&request)) {
        return refusal(denied);
    }
    let principal = match security.authenticate(credential.as_deref()).await {
        Ok(principal) => principal,
        Err(denied) => return refusal(denied),
    };
    let family = family_of(request.uri().path());
    if let Err(denied) = security.rate_check(&principal, family) {
        return refusal(denied);
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The middleware of the WebSocket API and of GraphQL subscriptions: like [`authenticate`],
/// except that a handshake with no credential at all is let through without a principal (once
/// counted against the per-IP limit), and the connection then must authenticate with its first
/// message: `{"type": "authenticate", "token": ...}` (see `ws::upgrade`) or a `connection_init`
/// payload (see `graphql::subscription_routes`).
pub async fn authenticate_or_defer(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    let has_credential =
        request.headers().contains_key(header::AUTHORIZATION) || query_token(&request).is_some();
    let is_upgrade = request.headers().contains_key(header::UPGRADE);
    if security.enabled() && !has_credential && is_upgrade {
        if let Err(denied) = security.rate_check_ip(client_ip(&request)) {
            return refusal(denied);
        }
        return next.run(request).await;
    }
    authenticate(State(security), request, next).await
}

/// `/metrics` when `METRICS_REQUIRE_AUTH` is set: a credential with `metrics:read`.
pub async fn protect_metrics(
    State(security): State<Arc<Security>>,
    request: Request,
    next: Next,
) -> Response {
    if security.protects_metrics() {
        let credential = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let allowed = match security.authenticate(credential).await {
            Ok(principal) => principal.require(Permission::MetricsRead, None),
            Err(denied) => Err(denied),
        };
        if let Err(denied) = allowed {
            return refusal(denied);
        }
    }
    next.run(request).await
}
