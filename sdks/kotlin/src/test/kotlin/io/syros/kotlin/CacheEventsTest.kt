package io.syros.kotlin

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.flow.onStart
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Test
import java.util.UUID
import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

class CacheEventsTest : ServerTest() {
    private fun name(prefix: String) = "kt-$prefix-${UUID.randomUUID()}"

    @Test
    fun `cache set, get, entry, delete and tags`() = blockingTest {
        val key = name("cache")
        assertNull(client.cache.get(key))
        val expires = client.cache.set(key, "hello", ttl = 60.seconds, tags = listOf("t-$key"))
        assertNotNull(expires)
        assertEquals("hello", client.cache.getString(key))
        val entry = assertNotNull(client.cache.entry(key))
        assertEquals(listOf("t-$key"), entry.tags)
        assertEquals(expires, entry.expiresAtMs)
        assertNull(client.cache.set("$key-bytes", byteArrayOf(0, 1, 2)))
        assertContentEquals(byteArrayOf(0, 1, 2), client.cache.get("$key-bytes"))
        assertTrue(client.cache.delete("$key-bytes"))
        assertFalse(client.cache.delete("$key-bytes"))

        client.cache.set("$key-2", "b", tags = listOf("t-$key"))
        assertEquals(2L, client.cache.invalidateTag("t-$key"))
        assertNull(client.cache.get(key))
        assertNull(client.cache.get("$key-2"))
    }

    @Test
    fun `getOrCompute computes once for concurrent callers`() = blockingTest {
        val key = name("compute")
        val computed = AtomicInteger()
        val gate = CompletableDeferred<Unit>()
        val values = (1..8).map {
            async(Dispatchers.Default) {
                client.cache.getOrCompute(key, ttl = 60.seconds) {
                    computed.incrementAndGet()
                    gate.await()
                    "value".encodeToByteArray()
                }.decodeToString()
            }
        }
        delay(300)
        gate.complete(Unit)
        assertEquals(List(8) { "value" }, values.awaitAll())
        assertEquals(1, computed.get())
        assertEquals("value", client.cache.getString(key), "the computed value was stored")
        // A hit now: compute is not called.
        assertEquals("value", client.cache.getOrCompute(key) { error("must not compute") }.decodeToString())
    }

    @Test
    fun `getOrCompute that throws stores nothing and rethrows`() = blockingTest {
        val key = name("compute-fails")
        assertFailsWith<IllegalArgumentException> {
            client.cache.getOrCompute(key) { throw IllegalArgumentException("no value") }
        }
        assertNull(client.cache.get(key))
    }

    @Test
    fun `append, read, version conflict`() = blockingTest {
        val stream = name("stream")
        val first = client.events.append(stream, listOf(EventData("Created", """{"n":0}"""), EventData("Paid", """{"n":1}""")), ExpectedVersion.NoStream)
        assertEquals(1uL, first.lastVersion)
        val conflict = assertFailsWith<SyrosException.VersionConflict> {
            client.events.append(stream, listOf(EventData("Late")), ExpectedVersion.Exact(0u))
        }
        assertEquals("version_conflict", conflict.code)
        client.events.append(stream, listOf(EventData("Shipped", metadataJson = """{"by":"kt"}""")), ExpectedVersion.Exact(1u))
        val read = client.events.readStream(stream)
        assertEquals(listOf(0uL, 1uL, 2uL), read.events.map { it.version })
        assertEquals(listOf("Created", "Paid", "Shipped"), read.events.map { it.eventType })
        assertEquals("""{"by":"kt"}""", read.events[2].metadataJson)
        assertTrue(read.exists)
        val backwards = client.events.readStream(stream, from = null, backwards = true, limit = 1)
        assertEquals(listOf(2uL), backwards.events.map { it.version })
        val all = client.events.readAll(from = read.events[0].globalPosition, limit = 1000)
        assertTrue(all.events.map { it.eventId }.containsAll(read.events.map { it.eventId }))
        assertFailsWith<SyrosException.InvalidArgument> { client.events.append("", listOf(EventData("X"))) }
    }

    @Test
    fun `subscriptions are flows - catch-up then live`() = blockingTest {
        val stream = name("feed")
        client.events.append(stream, listOf(EventData("E", "{}"), EventData("E", "{}")))
        val subscribed = CompletableDeferred<Unit>()
        val received = async {
            client.events.subscribe(stream, SubscribeFrom.Start).onStart { subscribed.complete(Unit) }.take(4).toList()
        }
        subscribed.await()
        delay(200)
        client.events.append(stream, listOf(EventData("E", "{}"), EventData("E", "{}")))
        val events = withTimeout(10.seconds) { received.await() }
        assertEquals(listOf(0uL, 1uL, 2uL, 3uL), events.map { it.version })

        val fromTwo = withTimeout(10.seconds) { client.events.subscribe(stream, SubscribeFrom.At(2u)).take(2).toList() }
        assertEquals(listOf(2uL, 3uL), fromTwo.map { it.version })

        val fromAll = withTimeout(10.seconds) {
            client.events.subscribeAll(SubscribeFrom.At(events[0].globalPosition)).take(4).toList()
        }
        assertEquals(events.map { it.eventId }, fromAll.map { it.eventId })
    }

    @Test
    fun `open subscriptions - next with a timeout, from the end, close`() = blockingTest {
        val stream = name("open")
        client.events.append(stream, listOf(EventData("Old")))
        val subscription = client.events.open(stream, SubscribeFrom.End)
        assertNull(subscription.next(200.milliseconds), "nothing new yet")
        assertFalse(subscription.ended)
        client.events.append(stream, listOf(EventData("New")))
        assertEquals("New", assertNotNull(subscription.next(10.seconds)).eventType)
        subscription.close()
        assertTrue(subscription.ended)
        assertNull(subscription.next(1.seconds))

        val all = client.events.openAll(SubscribeFrom.End)
        client.events.append(stream, listOf(EventData("Later")))
        val later = assertNotNull(all.next(10.seconds))
        assertEquals(stream, later.stream)
        assertEquals(2uL, later.version)
        all.close()
    }
}
