package io.syros.kotlin

import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Test
import java.util.Collections
import java.util.UUID
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import kotlin.time.Duration.Companion.seconds

class SagasTest : ServerTest() {
    private fun steps(service: String) = listOf(
        Step("reserve", service, "reserve", compensation = "release"),
        Step("charge", service, "charge", compensation = "refund"),
        Step("ship", service, "ship"),
    )

    @Test
    fun `a saga with Kotlin handlers completes`() = blockingTest {
        val service = "kt-orders-${UUID.randomUUID()}"
        val calls = Collections.synchronizedList(mutableListOf<String>())
        val worker = client.sagas.worker(service, maxConcurrent = 4) {
            handle("reserve") { task -> calls += task.handler; """{"reserved":true}""" }
            handle("charge") { task ->
                calls += task.handler
                assertTrue(task.previousOutputsJson.contains("reserved"), task.previousOutputsJson)
                assertTrue(task.heartbeat())
                """{"charged":42}"""
            }
            handle("ship") { task -> calls += task.handler; """{"tracking":"T1","input":${task.inputJson}}""" }
        }
        assertTrue(worker.workerId.isNotEmpty())
        val job = worker.start(this)
        try {
            val saga = client.sagas.start("order", steps(service), inputJson = """{"order":1}""", idempotencyKey = "k-$service")
            val again = client.sagas.start("order", steps(service), inputJson = """{"order":1}""", idempotencyKey = "k-$service")
            assertEquals(saga.sagaId, again.sagaId, "the idempotency key returns the same saga")
            val done = client.sagas.wait(saga.sagaId, 30.seconds)
            assertEquals(SagaState.COMPLETED, done.state)
            assertEquals(listOf("reserve", "charge", "ship"), calls.toList())
            assertEquals("""{"charged":42}""", done.steps[1].outputJson)
            assertEquals(saga.sagaId, client.sagas.get(saga.sagaId).sagaId)
            assertTrue(client.sagas.list(state = SagaState.COMPLETED, name = "order").any { it.sagaId == saga.sagaId })
            withTimeout(10.seconds) { worker.stopAndDrain() }
            assertEquals(0L, worker.outstanding)
        } finally {
            worker.stop()
            withTimeout(10.seconds) { job.join() }
        }
    }

    @Test
    fun `a failing step compensates the completed ones in reverse`() = blockingTest {
        val service = "kt-comp-${UUID.randomUUID()}"
        val calls = Collections.synchronizedList(mutableListOf<String>())
        val worker = client.sagas.worker(service) {
            handle("reserve") { calls += "reserve"; "{}" }
            handle("charge") { calls += "charge"; "{}" }
            handle("ship") { calls += "ship"; throw StepFailure("out_of_stock", "nothing left", nonRetryable = true) }
            handle("refund") { task -> check(task.isCompensation); calls += "refund"; "{}" }
            handle("release") { calls += "release"; "{}" }
        }
        val job = worker.start(this)
        try {
            val saga = client.sagas.start("order", steps(service))
            val done = client.sagas.wait(saga.sagaId, 30.seconds)
            assertEquals(SagaState.COMPENSATED, done.state)
            assertEquals(listOf("reserve", "charge", "ship", "refund", "release"), calls.toList())
            val failure = done.steps[2].attempts.last()
            assertEquals("out_of_stock", failure.errorType)
        } finally {
            job.cancel()
            job.join()
        }
    }

    @Test
    fun `a handler exception is retried, an unknown handler fails the saga`() = blockingTest {
        val service = "kt-retry-${UUID.randomUUID()}"
        var attempts = 0
        val worker = client.sagas.worker(service) {
            handle("flaky") { task ->
                attempts += 1
                if (task.attempt < 2) TODO("first attempt fails") // an Error, not an Exception
                "{}"
            }
        }
        val job = worker.start(this)
        try {
            val retry = StepRetry(10u, 1.0, 10u, 3u, emptyList())
            val flaky = client.sagas.start("flaky", listOf(Step("one", service, "flaky", retry = retry)))
            val done = client.sagas.wait(flaky.sagaId, 30.seconds)
            assertEquals(SagaState.COMPLETED, done.state)
            assertEquals(2, attempts)
            assertEquals("NotImplementedError", done.steps[0].attempts.first().errorType)

            val unknown = client.sagas.start("unknown", listOf(Step("one", service, "nobody")))
            val failed = client.sagas.wait(unknown.sagaId, 30.seconds)
            assertEquals("unknown_handler", failed.steps[0].attempts.last().errorType)
            assertTrue(failed.state == SagaState.COMPENSATED || failed.state == SagaState.COMPENSATION_FAILED, "${failed.state}")
        } finally {
            worker.stop()
            job.join()
        }
    }

    @Test
    fun `cancel a saga`() = blockingTest {
        val service = "kt-cancel-${UUID.randomUUID()}" // no worker: the saga waits on its first step
        val saga = client.sagas.start("cancelled", steps(service))
        val cancelled = client.sagas.cancel(saga.sagaId)
        assertTrue(cancelled.state == SagaState.CANCELLED || cancelled.state == SagaState.COMPENSATING, "${cancelled.state}")
        assertEquals(SagaState.CANCELLED, client.sagas.wait(saga.sagaId, 30.seconds).state)
        assertTrue(client.sagas.list(name = "cancelled").any { it.sagaId == saga.sagaId })
    }
}
