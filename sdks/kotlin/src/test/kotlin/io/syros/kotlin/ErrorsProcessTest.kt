package io.syros.kotlin

import org.junit.jupiter.api.Test
import java.io.File
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertIs
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.seconds

class ErrorsProcessTest : ServerTest() {
    @Test
    fun `every error code of the core has its own SyrosException subclass`() {
        val codes = Syros.errorCodes
        assertEquals(15, codes.size, "$codes")
        for (code in codes) {
            val err = SyrosException.of(code, "m", true, mapOf("a" to "b"))
            assertFalse(err is SyrosException.Other, "no subclass for $code")
            assertEquals(code, err.code)
            assertTrue(err.retryable)
            assertEquals(mapOf("a" to "b"), err.details)
        }
        assertEquals(codes.size, codes.map { SyrosException.of(it, "m")::class }.toSet().size, "one class per code")
        assertIs<SyrosException.Other>(SyrosException.of("from_the_future", "m"))
    }

    @Test
    fun `client basics - health, owner, address, stats, auth token`() = blockingTest {
        client.checkHealth()
        assertTrue(client.owner.isNotEmpty())
        assertEquals(server.grpcAddress, client.currentAddress)
        assertTrue(client.stats.calls > 0u)
        client.setAuthToken("unused-token") // the test server does not check tokens
        client.checkHealth()
        client.setAuthToken(null)
        assertTrue(Syros.coreVersion.isNotEmpty())
    }

    @Test
    fun `bad input is a typed error`() = blockingTest {
        val bad = assertFailsWith<SyrosException.InvalidArgument> { client.lock("", ttl = 1.seconds) }
        assertEquals("invalid_argument", bad.code)
        assertFalse(bad.retryable)
        assertFailsWith<SyrosException.InvalidArgument> { client.lock("k", ttl = (-1).seconds) }
        assertFailsWith<SyrosException.NotFound> { client.sagas.get("no-such-saga") }
    }

    @Test
    fun `a closed client refuses calls`() = blockingTest {
        val closing = SyrosClient.connect(server.grpcAddress)
        closing.close()
        assertTrue(closing.isClosed)
        assertFailsWith<SyrosException.Cancelled> { closing.checkHealth() }
    }

    @Test
    fun `connecting to nothing fails with unavailable`() = blockingTest {
        val err = assertFailsWith<SyrosException> {
            SyrosClient.connect(SyrosOptions(listOf("127.0.0.1:1"), connectTimeout = 1.seconds))
        }
        assertTrue(err is SyrosException.Unavailable || err is SyrosException.DeadlineExceeded, "$err")
    }

    /** Run [mainClass] of the test class path in a JVM of its own; its output once it exited. */
    private fun runProbe(mainClass: String): String {
        val classPath = System.getProperty("surefire.test.class.path") ?: System.getProperty("java.class.path")
        val java = File(System.getProperty("java.home"), "bin/java").path
        val probe = ProcessBuilder(java, "-cp", classPath, mainClass, server.grpcAddress)
            .redirectErrorStream(true)
            .start()
        val exited = probe.waitFor(60, TimeUnit.SECONDS)
        if (!exited) probe.destroyForcibly()
        assertTrue(exited, "the JVM of $mainClass did not exit within 60 s after main returned")
        val output = probe.inputStream.bufferedReader().readText()
        assertEquals(0, probe.exitValue(), output)
        return output
    }

    @Test
    fun `the JVM exits by itself after using every kind of object`() {
        assertTrue(runProbe("io.syros.kotlin.ExitProbeKt").contains("probe done"))
    }

    @Test
    fun `Syros shutdown cancels pending calls and the next call starts a new runtime`() {
        val output = runProbe("io.syros.kotlin.ShutdownProbe")
        assertTrue(output.contains("shutdown probe done"), output)
    }
}
