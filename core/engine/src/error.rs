//! The one error taxonomy of Syros. Every transport (gRPC, REST) and every SDK maps [`ErrorKind`]
//! mechanically; nothing else decides what an error means.

use std::collections::BTreeMap;
use std::fmt;

/// What went wrong, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or out of range (bad name, TTL, JSON, ...).
    InvalidArgument,
    /// The named thing does not exist.
    NotFound,
    /// The lease is not (or no longer) held by the caller.
    LockNotHeld,
    /// Optimistic concurrency: the stream is not at the expected version.
    VersionConflict,
    /// A value or batch exceeds a configured size limit.
    PayloadTooLarge,
    /// The operation is not available (yet) on this server.
    Unimplemented,
    /// Storage or the server is temporarily unreachable; retrying may succeed.
    Unavailable,
    /// A bug or an unexpected storage failure.
    Internal,
    /// The write may or may not have been applied: the connection to the store was lost during
    /// or after its COMMIT, so whether the store committed is unknown. Not retryable blindly;
    /// an append is safe to repeat (a repeat of a committed append is acknowledged again, by
    /// its event ids, not stored twice).
    OutcomeUnknown,
}

impl ErrorKind {
    /// Stable snake_case code used on the wire (gRPC message prefix, REST `code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::LockNotHeld => "lock_not_held",
            ErrorKind::VersionConflict => "version_conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// Whether the same request may succeed if simply retried later.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable)
    }
}

/// An error with its kind, a human-readable message and structured details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub details: BTreeMap<String, String>,
}

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            details: BTreeMap::new(),
        }
    }

    /// Adds one structured detail (e.g. `expected_version`).
    pub fn with_detail(mut self, name: &str, value: impl ToString) -> Self {
        self.details.insert(name.to_string(), value.to_string());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// The error of a failed COMMIT. A store that answered (a database error) did not commit;
    /// a connection lost on the way leaves the outcome unknown, which must not be reported as
    /// `unavailable` (that promises nothing was applied).
    pub fn from_commit(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(_) => Error::from(err),
            other => Self::new(
                ErrorKind::OutcomeUnknown,
                format!("the connection to storage was lost during COMMIT; the write may or may not have been applied: {other}"),
            ),
        }
    }

    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::unavailable(format!("storage unavailable: {err}"))
            }
            _ => Error::internal(format!("storage error: {err}")),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::internal(format!("storage migration failed: {err}"))
    }
}
