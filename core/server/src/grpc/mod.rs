//! The gRPC transport: one thin adapter per service, each RPC calling one engine method.

pub mod cache;
pub mod events;
pub mod health;
pub mod layers;
pub mod locks;
pub mod sagas;

use syros_engine::{Error, ErrorKind};
use volo_grpc::metadata::MetadataValue;
use volo_grpc::{Code, Status};

/// gRPC metadata key carrying the Syros error code (`lock_not_held`, `version_conflict`, ...),
/// so clients can tell apart kinds that share a gRPC status code.
pub const ERROR_CODE_HEADER: &str = "syros-error-code";

/// Map an engine error to a gRPC status, mechanically from its kind.
pub fn status(err: Error) -> Status {
    let code = match err.kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::LockNotHeld | ErrorKind::VersionConflict => Code::FailedPrecondition,
        ErrorKind::PayloadTooLarge => Code::ResourceExhausted,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
        // The store may have applied it; the syros-error-code header says which case it is.
        ErrorKind::OutcomeUnknown => Code::Unknown,
    };
    if err.kind == ErrorKind::Internal {
        tracing::error!(error = %err, "internal error");
    }
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
