package io.syros.kotlin

import io.syros.kotlin.ffi.NewEvent
import io.syros.kotlin.ffi.ReadRequest
import io.syros.kotlin.ffi.SubscriptionItem
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.flow
import kotlin.time.Duration

/**
 * An event to append.
 *
 * @property eventId unique id; null: the client makes one (the same for its retries, so a retried
 *   append is not written twice).
 */
data class EventData(
    val type: String,
    val dataJson: String = "{}",
    val metadataJson: String? = null,
    val eventId: String? = null,
)

/** The event store: per-stream versions with no gaps, a global position, optimistic concurrency. */
class Events internal constructor(private val handle: io.syros.kotlin.ffi.Client) {
    /**
     * Append [events] atomically if [stream] is at [expected].
     *
     * @throws SyrosException.VersionConflict when it is not (never a silent overwrite).
     */
    suspend fun append(stream: String, events: List<EventData>, expected: ExpectedVersion = ExpectedVersion.Any): AppendResult {
        val batch = events.map { NewEvent(it.eventId, it.type, it.dataJson, it.metadataJson) }
        return ffi { handle.append(stream, batch, expected.toFfi()) }
    }

    /** Read [stream] from version [from] (inclusive; null with [backwards]: from the newest), at most [limit] events (0: the server's default). */
    suspend fun readStream(stream: String, from: ULong? = 0u, backwards: Boolean = false, limit: Int = 0): ReadResult =
        ffi { handle.read(ReadRequest(stream, from, backwards, limit.toUInt())) }

    /** Read all streams by global position, from [from] (inclusive; null with [backwards]: from the newest). */
    suspend fun readAll(from: ULong? = 0u, backwards: Boolean = false, limit: Int = 0): ReadResult =
        ffi { handle.read(ReadRequest(null, from, backwards, limit.toUInt())) }

    /**
     * The events of [stream] from [from]: catch-up, then live; a cold [Flow] (each collection
     * subscribes anew). It resumes after reconnecting with no gap and no duplicate, and ends only
     * when the collector stops (or with the error that ended the subscription). To be sure the
     * subscription is open before appending (e.g. from [SubscribeFrom.End]), use [open].
     */
    fun subscribe(stream: String, from: SubscribeFrom = SubscribeFrom.Start): Flow<RecordedEvent> =
        flow { emitAll(open(stream, from).asFlow()) }

    /** The events of all streams by global position, as [subscribe]. */
    fun subscribeAll(from: SubscribeFrom = SubscribeFrom.Start): Flow<RecordedEvent> =
        flow { emitAll(openAll(from).asFlow()) }

    /** Subscribe to [stream] now and return the open subscription, read with [EventSubscription.next]. */
    suspend fun open(stream: String, from: SubscribeFrom = SubscribeFrom.Start): EventSubscription =
        EventSubscription(ffi { handle.subscribe(stream, from.toFfi()) })

    /** Subscribe to all streams now, as [open]. */
    suspend fun openAll(from: SubscribeFrom = SubscribeFrom.Start): EventSubscription =
        EventSubscription(ffi { handle.subscribe(null, from.toFfi()) })
}

/**
 * An open subscription: catch-up, then live; it resumes after reconnecting with no gap and no
 * duplicate. Read it with [next] (one reader at a time) or as a [Flow] with [asFlow]; [close]
 * stops it.
 */
class EventSubscription internal constructor(private val handle: io.syros.kotlin.ffi.Subscription) : AutoCloseable {
    /** Whether it ended: closed, or ended by the error [next] threw. */
    @Volatile
    var ended: Boolean = false
        private set

    /**
     * The next event, waiting up to [timeout] (null: no limit); null when the time passed or the
     * subscription ended ([ended]). Cancelling the caller loses no event.
     */
    suspend fun next(timeout: Duration? = null): RecordedEvent? {
        if (ended) return null
        val item = try {
            ffi { handle.next(timeout?.toMillis("timeout")) }
        } catch (err: SyrosException) {
            ended = true
            throw err
        }
        return when (item) {
            is SubscriptionItem.Event -> item.v1
            is SubscriptionItem.TimedOut -> null
            is SubscriptionItem.Ended -> {
                ended = true
                null
            }
        }
    }

    /** The events as a [Flow] that closes this subscription when the collector stops. */
    fun asFlow(): Flow<RecordedEvent> = flow {
        try {
            while (true) emit(next() ?: break)
        } finally {
            close()
        }
    }

    /** Stop following (idempotent); a pending [next] returns null. */
    override fun close() {
        ended = true
        handle.unsubscribe()
    }
}
