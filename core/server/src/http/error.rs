//! The JSON error shape of every HTTP answer that is not a success, and its mapping from the
//! engine's [`ErrorKind`]: `{"code": "...", "message": "...", "details": {...}}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use syros_engine::{Error, ErrorKind};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, one of docs/errors.md (`invalid_argument`, `not_found`,
    /// `lock_not_held`, `lock_timeout`, `version_conflict`, `payload_too_large`,
    /// `unimplemented`, `unavailable`, `internal`, `outcome_unknown`, ...); and, from the HTTP
    /// gateway itself, `origin_not_allowed` (403), `host_not_allowed` (421).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured details (for example `expected_version` and `actual_version` of a conflict,
    /// or the `holder` of a lock that could not be acquired).
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

/// An error answer: an HTTP status and an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The HTTP status of an error kind: the vocabulary's (`ErrorKind::http_status`,
/// docs/errors.md).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ApiError {
    /// An error with a given status and code and no details.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
                details: Map::new(),
            },
        }
    }

    /// Shorthand for a 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::from(Error::invalid(message))
    }

    /// Adds one detail.
    pub fn with_detail(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.body.details.insert(name.to_string(), value.into());
        self
    }

    /// The answer for a status that no handler produced (no route, wrong method, a body over
    /// the size limit, ...): the code follows from the status.
    pub fn for_status(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound.code(),
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::PayloadTooLarge.code(),
            StatusCode::NOT_IMPLEMENTED => ErrorKind::Unimplemented.code(),
            StatusCode::SERVICE_UNAVAILABLE => ErrorKind::Unavailable.code(),
            s if s.is_server_error() => ErrorKind::Internal.code(),
            _ => ErrorKind::InvalidArgument.code(),
        };
        Self::new(status, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        if err.kind == ErrorKind::Internal {
            tracing::error!(error = %err, "internal error");
        }
        ApiError {
            status: status_of(err.kind),
            body: ErrorBody {
                code: err.kind.code().to_string(),
                message: err.message,
                details: err
                    .details
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        super::metrics::api_error("http", &self.body.code);
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Rejections keep axum's status (400 syntax, 413 too large, 415 content type, 422 a JSON body of
/// the wrong shape) and get the JSON error shape.
fn rejection(status: StatusCode, text: String) -> ApiError {
    ApiError::for_status(status, text)
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejection(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        let status = if r.status().is_server_error() {
            r.status()
        } else {
            StatusCode::BAD_REQUEST
        };
        rejection(status, r.body_text())
    }
}

/// `axum::Json` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Longest plain-text error body kept as the message of the JSON error.
const MAX_ERROR_TEXT: usize = 4096;

/// Gives a JSON error body to error responses produced outside the handlers (no such route,
/// method not allowed, request body over the limit, a failed WebSocket upgrade, ...).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if content_type.starts_with("application/json") {
        return response;
    }
    let fallback = match status {
        StatusCode::NOT_FOUND => "no such route",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route",
        StatusCode::PAYLOAD_TOO_LARGE => "request body is over the size limit",
        other => other.canonical_reason().unwrap_or("request failed"),
    };
    let (mut parts, body) = response.into_parts();
    // Keep a short plain-text explanation (e.g. from GraphQL or the WebSocket upgrade).
    let text = if content_type.starts_with("text/plain") {
        axum::body::to_bytes(body, MAX_ERROR_TEXT)
            .await
            .ok()
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    } else {
        None
    };
    let message = text.unwrap_or_else(|| fallback.to_string());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = ApiError::for_status(status, message).body;
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_statuses() {
        assert_eq!(
            status_of(ErrorKind::InvalidArgument),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::LockNotHeld), StatusCode::CONFLICT);
        assert_eq!(status_of(ErrorKind::VersionConflict), StatusCode::CONFLICT);
        assert_eq!(
            status_of(ErrorKind::PayloadTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_of(ErrorKind::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status_of(ErrorKind::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(ErrorKind::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let err = ApiError::from(
            Error::new(ErrorKind::VersionConflict, "x").with_detail("expected_version", 3),
        );
        assert_eq!(err.body.code, "version_conflict");
        assert_eq!(err.body.details["expected_version"], "3");
    }
}
