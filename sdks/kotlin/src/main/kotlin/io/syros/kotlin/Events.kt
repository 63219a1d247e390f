package io.syros.kotlin

import io.syros.kotlin.ffi.NewEvent
import io.syros.kotlin.ffi.ReadRequest
import io.syros.kotlin.ffi.SubscriptionItem
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

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
     * when the collector stops (or with the error that ended the subscription).
     */
    fun subscribe(stream: String, from: SubscribeFrom = SubscribeFrom.Start): Flow<RecordedEvent> = follow(stream, from)

    /** The events of all streams by global position, as [subscribe]. */
    fun subscribeAll(from: SubscribeFrom = SubscribeFrom.Start): Flow<RecordedEvent> = follow(null, from)

    private fun follow(stream: String?, from: SubscribeFrom): Flow<RecordedEvent> = flow {
        val subscription = ffi { handle.subscribe(stream, from.toFfi()) }
        try {
            while (true) {
                // A `next` cancelled with the collector loses no event (the core's guarantee).
                when (val item = ffi { subscription.next(null) }) {
                    is SubscriptionItem.Event -> emit(item.v1)
                    is SubscriptionItem.TimedOut -> continue
                    is SubscriptionItem.Ended -> break
                }
            }
        } finally {
            subscription.unsubscribe()
            subscription.destroy()
        }
    }
}
