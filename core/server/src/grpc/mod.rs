//! The gRPC transport: one thin adapter per service, each RPC calling one engine method.

pub mod cache;
pub mod events;
pub mod health;
pub mod layers;
pub mod lock_session;
pub mod locks;
pub mod sagas;
pub mod shared;

use syros_engine::{Error, ErrorKind};
use volo_grpc::metadata::MetadataValue;
use volo_grpc::{Code, Status};

/// gRPC metadata key carrying the Syros error code (`lock_not_held`, `version_conflict`, ...),
/// so clients can tell apart kinds that share a gRPC status code.
pub use syros_engine::ERROR_CODE_HEADER;

/// Map an engine error to a gRPC status, mechanically from its kind (the vocabulary's
/// `grpc_code`, docs/errors.md).
pub fn status(err: Error) -> Status {
    let code = Code::from(err.kind.grpc_code().number());
    if err.kind == ErrorKind::Internal {
        tracing::error!(error = %err, "internal error");
    }
    crate::http::metrics::api_error("grpc", err.kind.code());
    let mut status = Status::new(code, err.to_string());
    status.metadata_mut().insert(
        ERROR_CODE_HEADER,
        MetadataValue::from_static(err.kind.code()),
    );
    status
}

/// Convert a proto `u32` page size to the engine's `usize`.
pub fn limit(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
