package io.syros.kotlin

import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.withContext
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds

/**
 * A held lock. The client core renews it in the background at about a third of its TTL and
 * tells the moment it is lost ([lost], [awaitLost]). Release it with [release], or hold it for a
 * block with [use] / [SyrosClient.withLock]; [close] (or garbage collection) releases it in the
 * background.
 */
class Lease internal constructor(private val handle: io.syros.kotlin.ffi.Lease) : AutoCloseable {
    /** The lease as last granted or renewed. */
    val info: LeaseInfo get() = handle.info()

    /** The locked key. */
    val key: String get() = info.key

    /** The lease's id. */
    val leaseId: String get() = info.leaseId

    /** Strictly increasing for every lease ever granted on any key: pass it to the protected resource. */
    val fencingToken: ULong get() = info.fencingToken

    /** The TTL it was acquired with. */
    val ttl: Duration get() = handle.ttlMs().toLong().milliseconds

    /** Whether it was lost: the server said so, or renewals failed past its expiry. Stop the protected work. */
    val lost: Boolean get() = handle.isLost()

    /** Whether it is still ours: neither released nor lost. */
    val held: Boolean get() = handle.isHeld()

    /** Release it; releasing again does nothing. */
    suspend fun release() = ffi { handle.release() }

    /** Extend it now (the core renews it by itself anyway). */
    suspend fun renew(): LeaseInfo = ffi { handle.renew() }

    /**
     * Suspend until the lease ends: true when it was lost (returns at once if it already was),
     * false when it was released. Cancelling the caller only stops the wait.
     */
    suspend fun awaitLost(): Boolean = awaitEnd(null) == LeaseEnd.LOST

    /** Wait until the lease ends, at most [timeout] (null: no limit): `LOST`, `RELEASED` or `TIMED_OUT`. */
    suspend fun awaitEnd(timeout: Duration?): LeaseEnd = ffi { handle.waitEnd(timeout?.toMillis("timeout")) }

    /**
     * Run [block] with this lease and release it afterwards, also when [block] throws or is
     * cancelled. A failure to release after [block] failed is added to its exception as suppressed.
     *
     * @throws SyrosException.LockNotHeld after [block] returned, when the lease had been lost
     *   before the release: [block] did not run under the lock's guarantee to its end.
     */
    suspend fun <R> use(block: suspend (Lease) -> R): R {
        val result = try {
            block(this)
        } catch (err: Throwable) {
            try {
                withContext(NonCancellable) { release() }
            } catch (releaseErr: Throwable) {
                err.addSuppressed(releaseErr)
            }
            throw err
        }
        withContext(NonCancellable) { release() }
        return result
    }

    /** Release in the background (without waiting) and free the native lease. */
    override fun close() = handle.destroy()

    override fun toString(): String = "Lease(${info})"
}
