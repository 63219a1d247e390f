package io.syros.kotlin

import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.runBlocking
import kotlin.time.Duration.Companion.seconds

/**
 * Run by ErrorsProcessTest in a JVM of its own: uses a client, a renewed lease, a subscription,
 * a saga worker and get-or-compute, leaves some of them open, and returns from main without
 * calling [Syros.shutdown]. The JVM must exit by itself.
 */
fun main(args: Array<String>) = runBlocking {
    val client = SyrosClient.connect(args[0])
    val key = "kt-exit-${ProcessHandle.current().pid()}"
    client.lock("$key-held", ttl = 3.seconds) // left held: renewed in the background
    client.events.append("$key-stream", listOf(EventData("E")))
    client.events.subscribe("$key-stream").first()
    client.cache.getOrCompute("$key-cache") { "v".encodeToByteArray() }
    val worker = client.sagas.worker("$key-service") { handle("a") { "{}" } }
    val saga = client.sagas.start("exit", listOf(Step("a", "$key-service", "a")))
    val job = worker.start(this)
    client.sagas.wait(saga.sagaId, 30.seconds)
    worker.stop()
    job.join()
    println("probe done")
}

/**
 * Run by ErrorsProcessTest in a JVM of its own (a shutdown would break the clients of the other
 * tests): a lock wait pending when [Syros.shutdown] is called fails with
 * [SyrosException.Cancelled], and a client created afterwards works on a new runtime.
 */
object ShutdownProbe {
    @JvmStatic
    fun main(args: Array<String>) = runBlocking {
        val client = SyrosClient.connect(args[0])
        val key = "kt-shutdown-${ProcessHandle.current().pid()}"
        val holder = client.lock(key, ttl = 10.seconds)
        val waiter = async { runCatching { client.lock(key, ttl = 10.seconds, wait = 60.seconds) } }
        delay(300)
        Syros.shutdown(2.seconds)
        val outcome = withTimeout(10.seconds) { waiter.await() }
        check(outcome.exceptionOrNull() is SyrosException.Cancelled) { "the pending wait ended with $outcome" }
        val fresh = SyrosClient.connect(args[0])
        fresh.checkHealth()
        fresh.forceRelease(key)
        fresh.lock(key, ttl = 5.seconds).release()
        fresh.close()
        println("shutdown probe done")
    }
}
