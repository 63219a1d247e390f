//! The server span and request id of each HTTP request (REST routes, GraphQL, the WebSocket
//! upgrade), as [`crate::telemetry::api_call`] makes them for gRPC calls.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::{self, REQUEST_ID_HEADER};

/// Route middleware: runs the request in its span (named `<METHOD> <route template>`, the
/// caller's `traceparent` as parent), records the status, and answers with `x-request-id`.
pub async fn trace(request: Request, next: Next) -> Response {
    let call = {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        telemetry::api_call(
            "http",
            &format!("{} {route}", request.method()),
            header("traceparent"),
            header("tracestate"),
            header(REQUEST_ID_HEADER),
        )
    };
    let mut response = next.run(request).instrument(call.span.clone()).await;
    let status = response.status();
    telemetry::record_outcome(&call.span, status.as_str(), None, status.is_server_error());
    if let Ok(id) = HeaderValue::from_str(&call.request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}
