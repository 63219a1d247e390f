package io.syros.kotlin

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Test
import java.util.UUID
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

class LocksTest : ServerTest() {
    private fun key(name: String) = "kt-$name-${UUID.randomUUID()}"

    @Test
    fun `lock, status, renew, release and fencing tokens`() = blockingTest {
        val key = key("basic")
        val first = client.lock(key, ttl = 5.seconds)
        assertTrue(first.held)
        assertFalse(first.lost)
        assertEquals(key, first.key)
        assertEquals(5.seconds, first.ttl)
        assertEquals(client.owner, first.info.owner)
        assertEquals(first.leaseId, client.lockStatus(key)?.leaseId)
        assertTrue(client.listLocks(key).any { it.leaseId == first.leaseId })
        val renewed = first.renew()
        assertTrue(renewed.expiresAtMs >= first.info.acquiredAtMs)
        first.release()
        first.release() // idempotent
        assertFalse(first.held)
        assertNull(client.lockStatus(key))
        assertFailsWith<SyrosException.LockNotHeld> { first.renew() }

        val second = client.lock(key, ttl = 5.seconds)
        assertTrue(second.fencingToken > first.fencingToken, "${second.fencingToken} > ${first.fencingToken}")
        second.release()
    }

    @Test
    fun `tryLock, lock timeout with holder details, forceRelease`() = blockingTest {
        val key = key("held")
        val holder = client.lock(key, ttl = 10.seconds, owner = "holder-1")
        assertNull(client.tryLock(key, ttl = 1.seconds))
        val timeout = assertFailsWith<SyrosException.LockTimeout> { client.lock(key, ttl = 1.seconds, wait = 100.milliseconds) }
        assertEquals("lock_timeout", timeout.code)
        assertTrue(timeout.details.values.any { it == "holder-1" }, "details name the holder: ${timeout.details}")
        val dropped = client.forceRelease(key)
        assertEquals(holder.leaseId, dropped?.leaseId)
        val after = assertNotNull(client.tryLock(key, ttl = 1.seconds))
        after.release()
        holder.close()
    }

    @Test
    fun `withLock and use release, also on failure`() = blockingTest {
        val key = key("with")
        val seen = client.withLock(key, ttl = 5.seconds) { lease ->
            assertEquals(lease.leaseId, client.lockStatus(key)?.leaseId)
            lease.fencingToken
        }
        assertTrue(seen > 0u)
        assertNull(client.lockStatus(key))
        assertFailsWith<IllegalStateException> {
            client.lock(key, ttl = 5.seconds).use { error("boom") }
        }
        assertNull(client.lockStatus(key), "use released the lease after the block threw")
        // A lease taken away during the block (force-released) is reported when the block ends.
        assertFailsWith<SyrosException.LockNotHeld> {
            client.withLock(key, ttl = 5.seconds) { client.forceRelease(key) }
        }
    }

    @Test
    fun `coroutines contending for one lock keep a counter exact`() = blockingTest {
        val key = key("counter")
        var counter = 0 // deliberately unsynchronised: only the lock protects it
        val workers = 8
        val rounds = 10
        val clients = (1..4).map { SyrosClient.connect(server.grpcAddress) }
        try {
            (0 until workers).map { worker ->
                async(kotlinx.coroutines.Dispatchers.Default) {
                    repeat(rounds) {
                        clients[worker % clients.size].withLock(key, ttl = 10.seconds, wait = 60.seconds) {
                            val read = counter
                            yield()
                            delay(1)
                            counter = read + 1
                        }
                    }
                }
            }.awaitAll()
        } finally {
            clients.forEach { it.close() }
        }
        assertEquals(workers * rounds, counter)
        assertNull(client.lockStatus(key))
    }

    @Test
    fun `cancelling a coroutine that waits for a lock leaves no lease`() = blockingTest {
        val key = key("cancel")
        val holder = client.lock(key, ttl = 10.seconds)
        val waiting = CompletableDeferred<Unit>()
        val waiter = launch {
            waiting.complete(Unit)
            client.lock(key, ttl = 10.seconds, wait = 60.seconds)
            error("the waiter must not get the lock")
        }
        waiting.await()
        delay(300) // the acquire is now waiting on the server
        waiter.cancel()
        waiter.join()
        assertTrue(waiter.isCancelled)
        holder.release()
        // Had the cancelled acquire lived on, it would take the lock now.
        delay(1500)
        assertNull(client.lockStatus(key), "a cancelled wait left a lease behind")
        val next = assertNotNull(client.tryLock(key, ttl = 1.seconds))
        next.release()
    }

    @Test
    fun `awaitLost returns when the server is gone past the TTL`() = blockingTest {
        val own = TestServer.start()
        try {
            val lonely = SyrosClient.connect(own.grpcAddress)
            val lease = lonely.lock(key("orphan"), ttl = 1.seconds)
            assertEquals(LeaseEnd.TIMED_OUT, lease.awaitEnd(300.milliseconds))
            own.kill9()
            val lost = withTimeout(15.seconds) { lease.awaitLost() }
            assertTrue(lost)
            assertTrue(lease.lost)
            assertFalse(lease.held)
            lonely.close()
        } finally {
            own.close()
        }
    }

    @Test
    fun `awaitLost returns false once released`() = blockingTest {
        val lease = client.lock(key("released"), ttl = 5.seconds)
        val watcher = async { lease.awaitLost() }
        delay(100)
        lease.release()
        assertFalse(withTimeout(5.seconds) { watcher.await() })
    }
}
