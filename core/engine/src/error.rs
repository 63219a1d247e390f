//! The one error taxonomy of Syros. Every transport (gRPC, REST) and every SDK maps [`ErrorKind`]
//! mechanically; nothing else decides what an error means.

use std::collections::BTreeMap;
use std::fmt;

/// What went wrong, independent of transport: the one vocabulary (`syros-vocab`), with each
/// kind's code, retryability, gRPC and HTTP status.
pub use syros_vocab::{ErrorKind, ERROR_CODE_HEADER};

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
