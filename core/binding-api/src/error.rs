//! The one error record that crosses into every language.

use std::collections::BTreeMap;
use std::fmt;

pub use syros_client::ErrorKind;

/// Result of every binding-API call.
pub type Result<T, E = ErrorRecord> = std::result::Result<T, E>;

/// An error as every language sees it: map [`code`](Self::code) to the language's error class
/// (one per kind, the list is [`ErrorKind::ALL`]), keep the rest as fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The kind, for Rust-side bindings that match on it.
    pub kind: ErrorKind,
    /// Stable snake_case code of the kind (`lock_not_held`, `version_conflict`, ...).
    pub code: String,
    /// Whether the same request may succeed if sent again later.
    pub retryable: bool,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context (`holder_owner`, `grpc_code`, `attempts`, ...), sorted by name.
    pub details: BTreeMap<String, String>,
}

impl ErrorRecord {
    /// An error of `kind` raised by the binding layer itself.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorRecord::from(syros_client::Error::new(kind, message))
    }

    /// `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// `cancelled`: the runtime went away, or the object was closed.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The same record with one more detail.
    pub fn with_detail(mut self, name: &str, value: impl ToString) -> Self {
        self.details.insert(name.to_string(), value.to_string());
        self
    }
}

impl From<syros_client::Error> for ErrorRecord {
    fn from(err: syros_client::Error) -> Self {
        ErrorRecord {
            kind: err.kind,
            code: err.kind.code().to_string(),
            retryable: err.retryable,
            message: err.message,
            details: err.details,
        }
    }
}

impl fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorRecord {}
