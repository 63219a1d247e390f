package io.syros.kotlin

import io.syros.kotlin.ffi.CacheLookup
import io.syros.kotlin.ffi.CacheSet
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.withContext
import kotlin.coroutines.cancellation.CancellationException
import kotlin.time.Duration

/** The tagged cache: values with a TTL and tags; [invalidateTag] removes every key of a tag atomically. */
class Cache internal constructor(private val handle: io.syros.kotlin.ffi.Client) {
    /** The value under [key], or null. */
    suspend fun get(key: String): ByteArray? = entry(key)?.value

    /** The value under [key] as UTF-8 text, or null. */
    suspend fun getString(key: String): String? = get(key)?.decodeToString()

    /** The entry under [key] (value, expiry, tags), or null. */
    suspend fun entry(key: String): CacheEntry? = ffi { handle.cacheGet(key) }

    /** Store [value] for [ttl] (null: no expiry) with [tags]; returns its expiry (ms since the epoch), if any. */
    suspend fun set(key: String, value: ByteArray, ttl: Duration? = null, tags: List<String> = emptyList()): Long? =
        ffi { handle.cacheSet(key, value, options(ttl, tags)) }

    /** Store [value] as UTF-8 text. */
    suspend fun set(key: String, value: String, ttl: Duration? = null, tags: List<String> = emptyList()): Long? =
        set(key, value.encodeToByteArray(), ttl, tags)

    /** Remove [key]; whether it existed. */
    suspend fun delete(key: String): Boolean = ffi { handle.cacheDelete(key) }

    /** Remove every key tagged [tag]; how many. */
    suspend fun invalidateTag(tag: String): Long = ffi { handle.cacheInvalidateTag(tag) }.toLong()

    /**
     * The value under [key], or [compute]'s, stored with [ttl] and [tags]. Callers in this
     * process asking for the same key at once share one lookup and one computation
     * (single-flight): one runs [compute], the others get its value. When [compute] throws, this
     * caller gets its exception, the others [SyrosException.CallbackFailed], and nothing is stored.
     */
    suspend fun getOrCompute(
        key: String,
        ttl: Duration? = null,
        tags: List<String> = emptyList(),
        compute: suspend () -> ByteArray,
    ): ByteArray = when (val lookup = ffi { handle.cacheBegin(key, options(ttl, tags)) }) {
        is CacheLookup.Hit -> lookup.value
        is CacheLookup.Compute -> lookup.ticket.use { ticket ->
            val value = try {
                compute()
            } catch (err: Throwable) {
                val reason = if (err is CancellationException) "the computation was cancelled" else err.toString()
                withContext(NonCancellable) { runCatching { ticket.fail(reason) } }
                throw err
            }
            ffi { ticket.complete(value) }
        }
    }

    private fun options(ttl: Duration?, tags: List<String>) = CacheSet(ttl?.toMillis("ttl"), tags)
}
