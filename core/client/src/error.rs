//! The one error type of the client core. Every binding maps [`ErrorKind`] mechanically (a Python
//! exception class, a JS `code`, a Java exception, a Go error value); nothing else decides what an
//! error means.
//!
//! The kinds are the shared vocabulary's (`syros_vocab::ErrorKind`, the table in docs/errors.md);
//! the server's arrive in the `syros-error-code` gRPC metadata, the gRPC status code is only a
//! fallback. A few kinds exist only
//! in the client: [`ErrorKind::LockTimeout`], [`ErrorKind::DeadlineExceeded`],
//! [`ErrorKind::Cancelled`], [`ErrorKind::Callback`] and the security kinds.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use volo_grpc::{Code, Status};

/// What went wrong, independent of transport and language, and the gRPC metadata key carrying
/// the server's code: the one vocabulary (`syros-vocab`, docs/errors.md).
pub use syros_vocab::{ErrorKind, ERROR_CODE_HEADER};

/// Whether a failed request may have had an effect on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Not a transport failure: the server answered, or the client refused before sending.
    Answered,
    /// The request never reached the server (e.g. connection refused): safe to send again.
    NotSent,
    /// The request may or may not have been processed (reset, timeout mid-call).
    Unknown,
}

/// An error of the Syros client: a [`kind`](Error::kind) to branch on, whether retrying may help,
/// a human-readable message, and structured details (`address`, `grpc_code`, `attempts`,
/// `holder_owner`, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Whether the same request may succeed if sent again later.
    pub retryable: bool,
    /// Human-readable description.
    pub message: String,
    /// Structured details, keyed by snake_case names.
    pub details: BTreeMap<String, String>,
    pub(crate) delivery: Delivery,
}

/// Result alias of the client core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`; `retryable` follows from the kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            retryable: kind.retryable(),
            message: message.into(),
            details: BTreeMap::new(),
            delivery: Delivery::Answered,
        }
    }

    /// Adds one structured detail.
    pub fn with_detail(mut self, name: &str, value: impl ToString) -> Self {
        self.details.insert(name.to_string(), value.to_string());
        self
    }

    /// The stable code of the kind (`lock_not_held`, ...).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// This transport failure of a call that is not safe to repeat, as what it means to the
    /// caller: the request may or may not have been applied.
    pub(crate) fn into_outcome_unknown(self, operation: &str) -> Self {
        let mut err = Error::new(
            ErrorKind::OutcomeUnknown,
            format!(
                "{operation} may or may not have been applied (not retried, it is not safe to \
                 repeat): {}",
                self.message
            ),
        )
        .with_delivery(Delivery::Unknown)
        .with_detail("cause_code", self.code());
        err.details.extend(self.details);
        err
    }

    /// Map a Volo status (from the server or from the transport) to a client error.
    ///
    /// `operation` is the RPC's name (`locks.renew`, ...); it disambiguates FAILED_PRECONDITION
    /// when a server does not send the `syros-error-code` metadata.
    pub fn from_status(status: &Status, operation: &str) -> Self {
        let server_code = status
            .metadata()
            .get(ERROR_CODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorKind::from_code);
        let message = if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_string()
        };
        let grpc_code = i32::from(status.code());
        if let Some(kind) = server_code {
            // The server answered: whatever it says, the request was handled (and for
            // `unavailable` not applied, since every engine write is one transaction), except
            // `outcome_unknown`: the server lost its store during the commit.
            let delivery = match kind {
                ErrorKind::Unavailable => Delivery::NotSent,
                ErrorKind::OutcomeUnknown => Delivery::Unknown,
                _ => Delivery::Answered,
            };
            return Error::new(kind, message)
                .with_detail("grpc_code", grpc_code)
                .with_delivery(delivery);
        }
        if is_transport(status) {
            // A transport failure surfaced as a status (connection refused arrives as UNKNOWN).
            let delivery = if never_sent(status) {
                Delivery::NotSent
            } else {
                Delivery::Unknown
            };
            let kind = if status.code() == Code::DeadlineExceeded {
                ErrorKind::DeadlineExceeded
            } else {
                ErrorKind::Unavailable
            };
            return Error::new(kind, format!("transport error: {message}"))
                .with_detail("grpc_code", grpc_code)
                .with_delivery(delivery);
        }
        let (kind, delivery) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (ErrorKind::InvalidArgument, Delivery::Answered)
            }
            Code::NotFound => (ErrorKind::NotFound, Delivery::Answered),
            Code::FailedPrecondition if operation.starts_with("events.") => {
                (ErrorKind::VersionConflict, Delivery::Answered)
            }
            Code::FailedPrecondition if operation.starts_with("locks.") => {
                (ErrorKind::LockNotHeld, Delivery::Answered)
            }
            Code::FailedPrecondition => (ErrorKind::InvalidArgument, Delivery::Answered),
            Code::ResourceExhausted => (ErrorKind::PayloadTooLarge, Delivery::Answered),
            Code::Unimplemented => (ErrorKind::Unimplemented, Delivery::Answered),
            // A proxy or the server's HTTP/2 layer said no: we cannot know if it was applied.
            Code::Unavailable => (ErrorKind::Unavailable, Delivery::Unknown),
            Code::DeadlineExceeded => (ErrorKind::DeadlineExceeded, Delivery::Unknown),
            Code::Unauthenticated => (ErrorKind::Unauthenticated, Delivery::Answered),
            Code::PermissionDenied => (ErrorKind::PermissionDenied, Delivery::Answered),
            _ => (ErrorKind::Internal, Delivery::Answered),
        };
        Error::new(kind, message)
            .with_detail("grpc_code", grpc_code)
            .with_delivery(delivery)
    }
}

/// Whether a status without a Syros error code was made by the client's transport rather than
/// sent by a server: it wraps an I/O or HTTP/2 error, or has a code Syros never sends itself
/// (UNKNOWN, CANCELLED: a server never cancels, and its handler panics become INTERNAL).
fn is_transport(status: &Status) -> bool {
    status.source().is_some()
        || matches!(status.code(), Code::Unknown | Code::Cancelled)
        || status.message().starts_with("h2 protocol error")
}

/// Whether a transport error happened while connecting, i.e. before the request was written.
fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = status.source();
    while let Some(err) = source {
        if let Some(legacy) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            if legacy.is_connect() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use volo_grpc::metadata::MetadataValue;

    #[test]
    fn codes_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ErrorKind::from_code("nope"), None);
    }

    #[test]
    fn server_code_wins_over_grpc_code() {
        let mut status = Status::new(Code::FailedPrecondition, "stream is at 3");
        status.metadata_mut().insert(
            ERROR_CODE_HEADER,
            MetadataValue::from_static("version_conflict"),
        );
        let err = Error::from_status(&status, "locks.renew");
        assert_eq!(err.kind, ErrorKind::VersionConflict);
        assert!(!err.retryable);
        assert_eq!(err.message, "stream is at 3");
        assert_eq!(err.details.get("grpc_code").map(String::as_str), Some("9"));
    }

    #[test]
    fn grpc_code_is_the_fallback() {
        let status = Status::new(Code::FailedPrecondition, "gone");
        assert_eq!(
            Error::from_status(&status, "locks.release").kind,
            ErrorKind::LockNotHeld
        );
        assert_eq!(
            Error::from_status(&status, "events.append").kind,
            ErrorKind::VersionConflict
        );
        let status = Status::new(Code::Unavailable, "draining");
        let err = Error::from_status(&status, "cache.get");
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.retryable);
        assert_eq!(err.delivery, Delivery::Unknown);
    }

    #[test]
    fn connection_refused_is_unavailable_and_not_sent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from_error(Box::new(io));
        assert_eq!(status.code(), Code::Unknown);
        let err = Error::from_status(&status, "cache.get");
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.retryable);
        assert_eq!(err.delivery, Delivery::NotSent);
    }

    #[test]
    fn broken_streams_are_unavailable_and_ambiguous() {
        for status in [
            Status::new(
                Code::Unknown,
                "h2 protocol error: error reading a body from connection",
            ),
            Status::new(Code::Internal, "h2 protocol error: connection reset"),
            Status::new(Code::Cancelled, "h2 protocol error: stream cancelled"),
        ] {
            let err = Error::from_status(&status, "events.subscribe");
            assert_eq!(err.kind, ErrorKind::Unavailable, "{status:?}");
            assert_eq!(err.delivery, Delivery::Unknown);
        }
        let err = Error::from_status(
            &Status::new(Code::Internal, "handler panicked"),
            "cache.get",
        );
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(!err.retryable);
    }

    #[test]
    fn outcome_unknown_from_the_server_is_ambiguous_and_not_blindly_retryable() {
        let mut status = Status::new(Code::Unknown, "connection lost during COMMIT");
        status.metadata_mut().insert(
            ERROR_CODE_HEADER,
            MetadataValue::from_static("outcome_unknown"),
        );
        let err = Error::from_status(&status, "events.append");
        assert_eq!(err.kind, ErrorKind::OutcomeUnknown);
        assert!(!err.retryable);
        assert_eq!(err.delivery, Delivery::Unknown);
    }

    #[test]
    fn display_has_code_and_message() {
        let err = Error::new(ErrorKind::LockTimeout, "k is held");
        assert_eq!(err.to_string(), "lock_timeout: k is held");
    }
}
