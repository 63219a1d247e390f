package io.syros.kotlin

import io.syros.kotlin.ffi.ClientConfig
import io.syros.kotlin.ffi.LockRequest
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds

/** Process-wide functions of the Syros client core. */
object Syros {
    /** The client core's version. */
    val coreVersion: String get() = io.syros.kotlin.ffi.coreVersion()

    /** The stable code of every error kind (each has its [SyrosException] subclass). */
    val errorCodes: List<String> get() = io.syros.kotlin.ffi.errorCodes()

    /**
     * Stop the client core's runtime, waiting up to [timeout] for its tasks: lease renewals,
     * subscriptions and workers end, pending calls fail with [SyrosException.Cancelled]. The
     * next call starts a new runtime. The JVM exits without it; call it to end background work
     * deterministically (a server shutting down, a test).
     */
    fun shutdown(timeout: Duration = 1.seconds) = io.syros.kotlin.ffi.shutdown(timeout.toMillis("timeout"))
}

/**
 * How to reach Syros.
 *
 * @property addresses `host:port` gRPC addresses; the client fails over between them.
 * @property owner default lock owner (null: `syros-<pid>-<random>`).
 * @property authToken bearer token sent with every call ([SyrosClient.setAuthToken] changes it).
 * @property retry retries of unary calls (null: the core's default).
 * @property resubscribe reconnection of subscriptions and task feeds (null: forever, default backoff).
 * @property keepaliveInterval HTTP/2 keepalive (null: the core's default).
 */
data class SyrosOptions(
    val addresses: List<String>,
    val connectTimeout: Duration = 5.seconds,
    val callTimeout: Duration = 10.seconds,
    val owner: String? = null,
    val authToken: String? = null,
    val retry: RetryConfig? = null,
    val resubscribe: RetryConfig? = null,
    val keepaliveInterval: Duration? = null,
    /** PEM CA file: connect over TLS and check the server's certificate against it. */
    val tlsCaFile: String? = null,
    /** The name the server's certificate must carry (default: the host of each address). */
    val tlsServerName: String? = null,
    /** PEM client certificate file, for servers that require one (mTLS; with [tlsClientKeyFile]). */
    val tlsClientCertFile: String? = null,
    /** PEM private key of [tlsClientCertFile]. */
    val tlsClientKeyFile: String? = null,
) {
    internal fun toConfig(): ClientConfig {
        val defaults = io.syros.kotlin.ffi.defaultClientConfig(addresses)
        return defaults.copy(
            connectTimeoutMs = connectTimeout.toMillis("connectTimeout"),
            callTimeoutMs = callTimeout.toMillis("callTimeout"),
            owner = owner,
            authToken = authToken,
            retry = retry,
            resubscribe = resubscribe,
            keepaliveIntervalMs = keepaliveInterval?.toMillis("keepaliveInterval") ?: defaults.keepaliveIntervalMs,
            tlsCaFile = tlsCaFile,
            tlsServerName = tlsServerName,
            tlsClientCertFile = tlsClientCertFile,
            tlsClientKeyFile = tlsClientKeyFile,
        )
    }
}

/**
 * A connection to Syros: locks here, and [cache], [events] and [sagas].
 *
 * Every `suspend` call runs on the Rust client core's runtime; the calling coroutine only waits
 * for it. Cancelling the coroutine cancels the call (a lock wait stops waiting and leaves no
 * lease). [close] refuses later calls; leases, workers and subscriptions already handed out keep
 * working until released, stopped or closed.
 *
 * ```
 * val client = SyrosClient.connect("127.0.0.1:9090")
 * client.withLock("orders:42", ttl = 10.seconds) { lease ->
 *     storage.write(order, fencingToken = lease.fencingToken)
 * }
 * ```
 */
class SyrosClient private constructor(private val handle: io.syros.kotlin.ffi.Client) : AutoCloseable {
    companion object {
        /** Default lease TTL. */
        val DEFAULT_TTL: Duration = 30.seconds

        /** Default time [lock] waits while someone else holds the key. */
        val DEFAULT_WAIT: Duration = 30.seconds

        /** Connect with [options]; fails with the connection's error. */
        suspend fun connect(options: SyrosOptions): SyrosClient {
            CoreThreads.keepAttached()
            val handle = ffi { io.syros.kotlin.ffi.Client(options.toConfig()) }
            try {
                ffi { handle.connect() }
            } catch (err: Throwable) {
                handle.destroy()
                throw err
            }
            return SyrosClient(handle)
        }

        /** Connect to these `host:port` addresses with the default options. */
        suspend fun connect(vararg addresses: String): SyrosClient = connect(SyrosOptions(addresses.toList()))
    }

    /** The tagged cache. */
    val cache: Cache = Cache(handle)

    /** The event store. */
    val events: Events = Events(handle)

    /** Sagas and their step workers. */
    val sagas: Sagas = Sagas(handle)

    /** The default lock owner. */
    val owner: String get() = ffi { handle.owner() }

    /** The address calls go to now. */
    val currentAddress: String get() = ffi { handle.currentAddress() }

    /** Calls, attempts, retries and failovers so far. */
    val stats: ClientStats get() = ffi { handle.stats() }

    /** Whether [close] was called. */
    val isClosed: Boolean get() = handle.isClosed()

    /** Replace the bearer token sent with every later call (null: send none). */
    fun setAuthToken(token: String?) = handle.setAuthToken(token)

    /** Ask the server whether it is serving. */
    suspend fun checkHealth() = ffi { handle.checkHealth() }

    /**
     * Acquire [key], waiting up to [wait] while someone else holds it; the lease is renewed in the
     * background at about a third of [ttl] until released or lost.
     *
     * @throws SyrosException.LockTimeout when still held after [wait] (details name the holder).
     */
    suspend fun lock(
        key: String,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration = DEFAULT_WAIT,
        owner: String? = null,
        autoRenew: Boolean = true,
    ): Lease {
        val request = LockRequest(ttl.toMillis("ttl"), wait.toMillis("wait"), owner, autoRenew)
        return Lease(ffi { handle.lock(key, request) })
    }

    /** Try once: null when someone else holds [key]. */
    suspend fun tryLock(key: String, ttl: Duration = DEFAULT_TTL, owner: String? = null, autoRenew: Boolean = true): Lease? {
        val request = LockRequest(ttl.toMillis("ttl"), 0u, owner, autoRenew)
        return ffi { handle.tryLock(key, request) }?.let(::Lease)
    }

    /**
     * Run [block] holding [key]: acquired as [lock] does, released when [block] returns, throws or
     * is cancelled ([Lease.use]; [SyrosException.LockNotHeld] when the lease was lost meanwhile).
     */
    suspend fun <R> withLock(
        key: String,
        ttl: Duration = DEFAULT_TTL,
        wait: Duration = DEFAULT_WAIT,
        block: suspend (Lease) -> R,
    ): R = lock(key, ttl, wait).use(block)

    /** The current holder of [key], or null when it is free. */
    suspend fun lockStatus(key: String): LeaseInfo? = ffi { handle.lockStatus(key) }

    /** Held locks whose key starts with [prefix] ([limit] 0: the server's default). */
    suspend fun listLocks(prefix: String = "", limit: Int = 0): List<LeaseInfo> =
        ffi { handle.listLocks(prefix, limit.toUInt()) }

    /** Administrative: drop whatever lease holds [key]; returns it. */
    suspend fun forceRelease(key: String): LeaseInfo? = ffi { handle.forceRelease(key) }

    /**
     * Refuse every later call with [SyrosException.Cancelled] (idempotent); the native client is
     * freed once nothing refers to it.
     */
    override fun close() = handle.closeClient()
}
