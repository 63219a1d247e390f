package io.syros.kotlin

import io.syros.kotlin.ffi.FfiException

/**
 * Every failure of a Syros call: one subclass per kind of the shared vocabulary (docs/errors.md),
 * chosen mechanically from the stable [code] the client core reports.
 *
 * @property code the stable snake_case code (`lock_timeout`, `version_conflict`, ...).
 * @property retryable whether the same request may succeed if sent again later.
 * @property details structured context (`holder_owner`, `grpc_code`, `attempts`, ...).
 */
sealed class SyrosException(
    val code: String,
    message: String,
    val retryable: Boolean,
    val details: Map<String, String>,
) : RuntimeException(message) {
    override fun toString(): String = "${this::class.simpleName}($code): $message"

    /** `invalid_argument`: the request is malformed or out of range (bad name, TTL, JSON, ...). */
    class InvalidArgument internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("invalid_argument", message, retryable, details)

    /** `not_found`: the named thing does not exist. */
    class NotFound internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("not_found", message, retryable, details)

    /** `lock_not_held`: the lease was released, expired or force-released. */
    class LockNotHeld internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("lock_not_held", message, retryable, details)

    /** `version_conflict`: the stream is not at the expected version (optimistic concurrency). */
    class VersionConflict internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("version_conflict", message, retryable, details)

    /** `payload_too_large`: a value or batch exceeds a configured size limit. */
    class PayloadTooLarge internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("payload_too_large", message, retryable, details)

    /** `unimplemented`: the operation is not available on this server. */
    class Unimplemented internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("unimplemented", message, retryable, details)

    /** `unavailable`: the server or its storage is unreachable; retrying later may succeed. */
    class Unavailable internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("unavailable", message, retryable, details)

    /** `internal`: a bug or an unexpected storage failure. */
    class Internal internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("internal", message, retryable, details)

    /** `outcome_unknown`: the write may or may not have been applied (a connection was lost). */
    class OutcomeUnknown internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("outcome_unknown", message, retryable, details)

    /** `lock_timeout`: the wait ended while someone else still held the lock (details name the holder). */
    class LockTimeout internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("lock_timeout", message, retryable, details)

    /** `deadline_exceeded`: the call, retries included, did not finish before its deadline. */
    class DeadlineExceeded internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("deadline_exceeded", message, retryable, details)

    /**
     * `cancelled`: the core cancelled the call (its runtime was shut down, the client closed).
     * Not a [kotlin.coroutines.cancellation.CancellationException]: cancelling a coroutine
     * surfaces as the coroutine's own cancellation.
     */
    class Cancelled internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("cancelled", message, retryable, details)

    /** `unauthenticated`: credentials are missing or invalid. */
    class Unauthenticated internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("unauthenticated", message, retryable, details)

    /** `permission_denied`: the credentials do not allow this operation. */
    class PermissionDenied internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("permission_denied", message, retryable, details)

    /** `callback_failed`: application code run for the client (a get-or-compute function) failed. */
    class CallbackFailed internal constructor(message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException("callback_failed", message, retryable, details)

    /** A code this SDK does not know yet (a newer core): [code] says which. */
    class Other internal constructor(code: String, message: String, retryable: Boolean, details: Map<String, String>) :
        SyrosException(code, message, retryable, details)

    companion object {
        /** The subclass of [code], carrying the other fields. */
        fun of(code: String, message: String, retryable: Boolean = false, details: Map<String, String> = emptyMap()): SyrosException =
            when (code) {
                "invalid_argument" -> InvalidArgument(message, retryable, details)
                "not_found" -> NotFound(message, retryable, details)
                "lock_not_held" -> LockNotHeld(message, retryable, details)
                "version_conflict" -> VersionConflict(message, retryable, details)
                "payload_too_large" -> PayloadTooLarge(message, retryable, details)
                "unimplemented" -> Unimplemented(message, retryable, details)
                "unavailable" -> Unavailable(message, retryable, details)
                "internal" -> Internal(message, retryable, details)
                "outcome_unknown" -> OutcomeUnknown(message, retryable, details)
                "lock_timeout" -> LockTimeout(message, retryable, details)
                "deadline_exceeded" -> DeadlineExceeded(message, retryable, details)
                "cancelled" -> Cancelled(message, retryable, details)
                "unauthenticated" -> Unauthenticated(message, retryable, details)
                "permission_denied" -> PermissionDenied(message, retryable, details)
                "callback_failed" -> CallbackFailed(message, retryable, details)
                else -> Other(code, message, retryable, details)
            }

        internal fun from(err: FfiException): SyrosException = when (err) {
            is FfiException.Failed -> of(err.code, err.description, err.retryable, err.details)
        }
    }
}

/** Run one bridge call, turning its error into the [SyrosException] of its code. */
internal inline fun <T> ffi(call: () -> T): T =
    try {
        call()
    } catch (err: FfiException) {
        throw SyrosException.from(err)
    }
