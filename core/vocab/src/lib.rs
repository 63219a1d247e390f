//! The one vocabulary of Syros: the names engine, server, client core and every binding share.
//!
//! - [`ErrorKind`]: every kind of error, its stable snake_case [`code`](ErrorKind::code) (the
//!   same on the wire, in every SDK and in docs/errors.md), whether it is
//!   [`retryable`](ErrorKind::retryable), and its [gRPC status](ErrorKind::grpc_code) and
//!   [HTTP status](ErrorKind::http_status);
//! - [`ERROR_CODE_HEADER`]: the gRPC metadata entry that carries the code;
//! - [`SagaState`], [`ExpectedVersion`], [`Direction`];
//! - [`lease_id_for_request`]: the lease id a server gives the grant of an acquire that carries
//!   a request id.
//!
//! Nearly dependency-free (sha2; serde only behind the `serde` feature), so anything may depend
//! on it.

use std::fmt;

/// gRPC metadata key carrying the Syros error code (`lock_not_held`, `version_conflict`, ...):
/// it tells apart kinds that share a gRPC status code.
pub const ERROR_CODE_HEADER: &str = "syros-error-code";

/// The lease id of the lease granted to an acquire of `key` that carried `request_id`.
///
/// Derived, not random, so that a client that gave up on an acquire whose answer may still be on
/// its way (a cancelled call, an ambiguous failure) can release whatever it may have been granted
/// by id, without asking for the lock again. SHA-256 over both (length-prefixed): ids of
/// different keys or requests never meet, and nobody can aim a request at another's lease id.
/// The same request id on the same key is, by definition, the same acquire.
pub fn lease_id_for_request(key: &str, request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update((key.len() as u64).to_be_bytes());
    hash.update(key.as_bytes());
    hash.update(request_id.as_bytes());
    let digest = hash.finalize();
    // 128 bits, as hex: the shape of the random ids (32 hex digits). Written digit by digit: a
    // `format!` per byte made this a tenth of an acquire's server work (callgrind).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in &digest[..16] {
        id.push(HEX[usize::from(byte >> 4)] as char);
        id.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    id
}

/// What went wrong, independent of transport and language.
///
/// The server reports the kinds marked *wire*; the others arise in the client core (a wait that
/// ended, a deadline, a callback), or at the server's authentication layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// *Wire.* The request is malformed or out of range (bad name, TTL, JSON, address, ...).
    InvalidArgument,
    /// *Wire.* The named thing does not exist.
    NotFound,
    /// *Wire.* The lease is not (or no longer) held by the caller: renew or release of a lease
    /// that was released, expired or force-released.
    LockNotHeld,
    /// *Wire.* Optimistic concurrency: the stream is not at the expected version.
    VersionConflict,
    /// *Wire.* A value or batch exceeds a configured size limit.
    PayloadTooLarge,
    /// *Wire.* The operation is not available (yet) on this server.
    Unimplemented,
    /// *Wire.* The server or its storage is unreachable; retrying later may succeed.
    Unavailable,
    /// *Wire.* A bug or an unexpected storage failure.
    Internal,
    /// *Wire.* The write may or may not have been applied: a connection (client to server, or
    /// server to its store) was lost after the request was sent and before its answer came
    /// back, e.g. during a PostgreSQL COMMIT. Not retried blindly: only calls that are safe to
    /// repeat (an append with event ids, an acquire with a request id) are retried.
    OutcomeUnknown,
    /// An acquire's wait ended while someone else still held the lock (REST: 409 with
    /// `details.holder`; gRPC: `acquired = false` with the holder, which the client core turns
    /// into this kind for `lock()`).
    LockTimeout,
    /// The call (including its retries) did not finish before its deadline.
    DeadlineExceeded,
    /// The call was cancelled (e.g. the client runtime was shut down).
    Cancelled,
    /// *Wire.* Credentials are missing or invalid.
    Unauthenticated,
    /// *Wire.* The credentials do not allow this operation.
    PermissionDenied,
    /// Application code run by the client (e.g. a `get_or_compute` function) failed.
    Callback,
}

/// A gRPC status code (the numbers are gRPC's own, `Code as i32` in any gRPC library).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The number on the wire (`grpc-status`).
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The canonical name (`FAILED_PRECONDITION`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl ErrorKind {
    /// Every kind, for bindings that generate one error class per kind.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::LockNotHeld,
        ErrorKind::VersionConflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Unimplemented,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::OutcomeUnknown,
        ErrorKind::LockTimeout,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Cancelled,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::Callback,
    ];

    /// Stable snake_case code: the `syros-error-code` metadata value, the REST body's `code`,
    /// and the name every SDK maps to its error class.
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
            ErrorKind::LockTimeout => "lock_timeout",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Callback => "callback_failed",
        }
    }

    /// The kind with this [`code`](Self::code), if any.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// Whether the same request may succeed if simply sent again later. (`outcome_unknown` is
    /// not: only a request that is safe to repeat may be sent again.)
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::DeadlineExceeded)
    }

    /// The gRPC status code that carries this kind (with [`ERROR_CODE_HEADER`] naming it
    /// exactly, since several kinds share a status).
    pub fn grpc_code(self) -> GrpcCode {
        match self {
            ErrorKind::InvalidArgument => GrpcCode::InvalidArgument,
            ErrorKind::NotFound => GrpcCode::NotFound,
            ErrorKind::LockNotHeld | ErrorKind::VersionConflict => GrpcCode::FailedPrecondition,
            ErrorKind::PayloadTooLarge => GrpcCode::ResourceExhausted,
            ErrorKind::Unimplemented => GrpcCode::Unimplemented,
            ErrorKind::Unavailable => GrpcCode::Unavailable,
            ErrorKind::Internal => GrpcCode::Internal,
            // The store may have applied it: neither a failure nor a success.
            ErrorKind::OutcomeUnknown | ErrorKind::Callback => GrpcCode::Unknown,
            // Contention, as gRPC defines ABORTED (the gRPC acquire itself answers
            // `acquired = false` instead of an error).
            ErrorKind::LockTimeout => GrpcCode::Aborted,
            ErrorKind::DeadlineExceeded => GrpcCode::DeadlineExceeded,
            ErrorKind::Cancelled => GrpcCode::Cancelled,
            ErrorKind::Unauthenticated => GrpcCode::Unauthenticated,
            ErrorKind::PermissionDenied => GrpcCode::PermissionDenied,
        }
    }

    /// The HTTP status of this kind in the REST API (and the one an HTTP-based SDK reports).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::LockNotHeld | ErrorKind::VersionConflict | ErrorKind::LockTimeout => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unimplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal | ErrorKind::Callback => 500,
            // The store's answer to COMMIT was lost: the write may or may not have been applied.
            ErrorKind::OutcomeUnknown | ErrorKind::DeadlineExceeded => 504,
            // The client closed the request (nginx's convention; no standard status exists).
            ErrorKind::Cancelled => 499,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum SagaState {
    /// Stored, not yet running.
    Pending,
    /// Steps are running.
    Running,
    /// A step failed for good (or the saga was cancelled): undoing completed steps.
    Compensating,
    /// Every step completed.
    Completed,
    /// A step failed and every completed step was undone.
    Compensated,
    /// A compensation failed for good: an operator must look.
    CompensationFailed,
    /// Cancelled, and what had completed was undone.
    Cancelled,
}

impl SagaState {
    /// Every state.
    pub const ALL: [SagaState; 7] = [
        SagaState::Pending,
        SagaState::Running,
        SagaState::Compensating,
        SagaState::Completed,
        SagaState::Compensated,
        SagaState::CompensationFailed,
        SagaState::Cancelled,
    ];

    /// snake_case name, as in the APIs and their docs (`compensation_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Pending => "pending",
            SagaState::Running => "running",
            SagaState::Compensating => "compensating",
            SagaState::Completed => "completed",
            SagaState::Compensated => "compensated",
            SagaState::CompensationFailed => "compensation_failed",
            SagaState::Cancelled => "cancelled",
        }
    }

    /// The state named `name` ([`as_str`](Self::as_str)'s names).
    pub fn parse(name: &str) -> Option<SagaState> {
        SagaState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }

    /// Nothing more will happen to the saga.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SagaState::Completed
                | SagaState::Compensated
                | SagaState::CompensationFailed
                | SagaState::Cancelled
        )
    }
}

impl fmt::Display for SagaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version a stream must be at for an append to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// Any version, including a stream that does not exist yet. A repeat (a retry after a lost
    /// answer) is recognised only while its events are still the stream's last.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// `"any"`, `"no_stream"`, or a version number (`"3"`).
    pub fn parse(text: &str) -> Option<ExpectedVersion> {
        match text {
            "any" => Some(ExpectedVersion::Any),
            "no_stream" => Some(ExpectedVersion::NoStream),
            number if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                number.parse().ok().map(ExpectedVersion::Exact)
            }
            _ => None,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// Read direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forwards,
    /// Newest first.
    Backwards,
}

impl Direction {
    /// `forwards` or `backwards`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forwards => "forwards",
            Direction::Backwards => "backwards",
        }
    }

    /// The direction named `name` ([`as_str`](Self::as_str)'s names).
    pub fn parse(name: &str) -> Option<Direction> {
        [Direction::Forwards, Direction::Backwards]
            .into_iter()
            .find(|direction| direction.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lease_ids_for_requests_are_the_documented_hash() {
        // SHA-256(len(key) as u64 BE || key || request id), first 16 bytes as lower-case hex;
        // computed independently (Python's hashlib).
        assert_eq!(
            lease_id_for_request("orders/42", "req-7"),
            "b8ded0ef2693446ec23b5891a29dcd57"
        );
    }

    #[test]
    fn lease_ids_of_requests_are_stable_and_apart() {
        let id = lease_id_for_request("orders:42", "req-1");
        assert_eq!(id, lease_id_for_request("orders:42", "req-1"));
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        // Another key, another request, or the same bytes split differently: another id.
        assert_ne!(id, lease_id_for_request("orders:43", "req-1"));
        assert_ne!(id, lease_id_for_request("orders:42", "req-2"));
        assert_ne!(
            lease_id_for_request("ab", "c"),
            lease_id_for_request("a", "bc")
        );
    }

    #[test]
    fn error_codes_are_unique_and_round_trip() {
        let codes: HashSet<_> = ErrorKind::ALL.iter().map(|kind| kind.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len(), "a code is used twice");
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
            assert_eq!(kind.to_string(), kind.code());
        }
        assert_eq!(ErrorKind::from_code("lock_held"), None);
        assert_eq!(ErrorKind::from_code(""), None);
    }

    #[test]
    fn only_transient_kinds_are_retryable() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|kind| kind.retryable())
            .collect();
        assert_eq!(
            retryable,
            [ErrorKind::Unavailable, ErrorKind::DeadlineExceeded]
        );
    }

    /// docs/errors.md is the table every SDK maps: it must say what this crate says, row by row.
    #[test]
    fn the_error_table_in_the_docs_matches() {
        let doc = include_str!("../../../docs/errors.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), ErrorKind::ALL.len(), "one row per kind");
        for (row, kind) in rows.iter().zip(ErrorKind::ALL) {
            assert_eq!(row[0], format!("`{}`", kind.code()), "{row:?}");
            let retryable = if kind.retryable() { "yes" } else { "no" };
            assert_eq!(row[2], retryable, "{row:?}");
            let grpc = kind.grpc_code();
            assert_eq!(
                row[3],
                format!("{} ({})", grpc.name(), grpc.number()),
                "{row:?}"
            );
            assert_eq!(row[4], kind.http_status().to_string(), "{row:?}");
        }
    }

    #[test]
    fn saga_states_round_trip() {
        for state in SagaState::ALL {
            assert_eq!(SagaState::parse(state.as_str()), Some(state));
        }
        assert_eq!(SagaState::parse("finished"), None);
        let finals: Vec<_> = SagaState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [
                SagaState::Completed,
                SagaState::Compensated,
                SagaState::CompensationFailed,
                SagaState::Cancelled
            ]
        );
    }

    #[test]
    fn expected_versions_and_directions_parse_their_names() {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(42),
        ] {
            assert_eq!(
                ExpectedVersion::parse(&expected.to_string()),
                Some(expected)
            );
        }
        for bad in ["latest", "", "-1", "+3", "1.5"] {
            assert_eq!(ExpectedVersion::parse(bad), None, "{bad:?}");
        }
        for direction in [Direction::Forwards, Direction::Backwards] {
            assert_eq!(Direction::parse(direction.as_str()), Some(direction));
        }
        assert_eq!(Direction::parse("sideways"), None);
    }
}
