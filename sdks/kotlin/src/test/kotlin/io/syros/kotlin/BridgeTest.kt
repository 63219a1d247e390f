package io.syros.kotlin

import org.junit.jupiter.api.Test
import java.util.UUID
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** How calls cross the UniFFI bridge: the core's threads in the JVM, the reused call status. */
class BridgeTest : ServerTest() {
    private fun key(name: String) = "kt-bridge-$name-${UUID.randomUUID()}"

    private fun coreThreads(): Set<Thread> = Thread.getAllStackTraces().keys.filter { it.name == "syros-core" }.toSet()

    @Test
    fun `the core's runtime threads stay attached to the JVM between calls, as daemons`() = blockingTest {
        val key = key("attached")
        // Each call ends with the core waking the coroutine from one of its runtime threads.
        repeat(20) { assertNull(client.lockStatus(key)) }
        val attached = coreThreads()
        assertTrue(attached.isNotEmpty(), "no core thread is attached after its callbacks (detached after each)")
        assertTrue(attached.all { it.isDaemon }, "an attached core thread would keep the JVM from exiting")
        repeat(200) {
            val lease = client.lock(key, ttl = 5.seconds)
            lease.release()
        }
        val later = coreThreads()
        assertTrue(later.containsAll(attached), "core threads were detached and attached again: $attached, then $later")
    }

    @Test
    fun `failed and successful calls alternate on one thread with the right outcome each`() = blockingTest {
        // blockingTest runs on one thread, so every call here reuses that thread's call status.
        val released = client.lock(key("released"), ttl = 5.seconds)
        released.release()
        val key = key("held")
        val holder = client.lock(key, ttl = 10.seconds, owner = "bridge-holder")
        repeat(10) {
            val notHeld = assertFailsWith<SyrosException.LockNotHeld> { released.renew() }
            assertEquals("lock_not_held", notHeld.code)
            // A success right after a failure: the status must not still say "error".
            assertEquals(holder.leaseId, client.lockStatus(key)?.leaseId)
            val timeout = assertFailsWith<SyrosException.LockTimeout> { client.lock(key, ttl = 1.seconds, wait = 10.milliseconds) }
            assertTrue(timeout.details.values.any { it == "bridge-holder" }, "details name the holder: ${timeout.details}")
            assertEquals("bridge-holder", holder.info.owner) // a synchronous call, same status
        }
        holder.release()
        assertNull(client.lockStatus(key))
    }
}
