package syros

import (
	"encoding/json"
	"fmt"
)

// Error is every error the Syros SDK returns for a failed operation: the core's one error
// record. Compare it with the sentinel values using errors.Is (errors.Is(err,
// syros.ErrLockTimeout)), or read its fields with errors.As.
type Error struct {
	// Code is the stable snake_case code, the same in every language ("lock_timeout",
	// "version_conflict", ...).
	Code string `json:"code"`
	// Retryable tells whether the same request may succeed if sent again later.
	Retryable bool `json:"retryable"`
	// Message is a human-readable explanation.
	Message string `json:"message"`
	// Details is structured context (holder_owner, grpc_code, attempts, ...).
	Details map[string]string `json:"details"`
}

// Error implements error: "syros: code: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return "syros: " + e.Code
	}
	return fmt.Sprintf("syros: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same Code, so every error of a code matches
// its sentinel (errors.Is(err, syros.ErrVersionConflict)).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, one per code: match them with errors.Is.
var (
	// ErrInvalidArgument: the request is malformed or out of range.
	ErrInvalidArgument = &Error{Code: "invalid_argument"}
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = &Error{Code: "not_found"}
	// ErrLockNotHeld: the lease is not (or no longer) held by the caller.
	ErrLockNotHeld = &Error{Code: "lock_not_held"}
	// ErrVersionConflict: the stream is not at the expected version.
	ErrVersionConflict = &Error{Code: "version_conflict"}
	// ErrPayloadTooLarge: a value or batch exceeds a configured size limit.
	ErrPayloadTooLarge = &Error{Code: "payload_too_large"}
	// ErrUnimplemented: the operation is not available on this server.
	ErrUnimplemented = &Error{Code: "unimplemented"}
	// ErrUnavailable: the server or its storage is unreachable; retrying later may succeed.
	ErrUnavailable = &Error{Code: "unavailable"}
	// ErrInternal: a bug or an unexpected failure.
	ErrInternal = &Error{Code: "internal"}
	// ErrOutcomeUnknown: the request may or may not have been applied (the connection was lost
	// after it was sent): look before acting again.
	ErrOutcomeUnknown = &Error{Code: "outcome_unknown"}
	// ErrLockTimeout: the lock was still held by someone else when the wait ended.
	ErrLockTimeout = &Error{Code: "lock_timeout"}
	// ErrDeadlineExceeded: the call (with its retries) did not finish before its deadline.
	ErrDeadlineExceeded = &Error{Code: "deadline_exceeded"}
	// ErrCancelled: the call was cancelled, or the client was closed.
	ErrCancelled = &Error{Code: "cancelled"}
	// ErrUnauthenticated: credentials are missing or invalid.
	ErrUnauthenticated = &Error{Code: "unauthenticated"}
	// ErrPermissionDenied: the credentials do not allow this operation.
	ErrPermissionDenied = &Error{Code: "permission_denied"}
	// ErrCallbackFailed: application code run for the client (a GetOrCompute function) failed.
	ErrCallbackFailed = &Error{Code: "callback_failed"}
)

// decodeError reads an error record from the C ABI.
func decodeError(data []byte) error {
	var e Error
	if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
		return &Error{Code: "internal", Message: fmt.Sprintf("unreadable error record %q", data)}
	}
	return &e
}
