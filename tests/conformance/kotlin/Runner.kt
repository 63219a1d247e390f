// The Kotlin runner of the conformance scenarios (tests/conformance/scenarios), over the Kotlin
// SDK (sdks/kotlin), mirroring the Rust and Node runners: a fresh `syros serve` per scenario (the
// one launcher mechanism, sdks/kotlin/src/test/kotlin/io/syros/kotlin/TestServer.kt), one line per
// scenario (`PASS name` / `FAIL name: reason`) and `N passed, N failed`; exits 1 when any failed
// or none ran. Compiled with the SDK's test sources (sdks/kotlin/pom.xml).
//
// Usage: java -cp <sdk test class path> io.syros.kotlin.conformance.RunnerKt [SCENARIO_DIR] [NAME_FILTER]
// (SYROS_BIN names the server; SYROS_TEST_BACKEND=redis-postgres picks the backend.)
package io.syros.kotlin.conformance

import io.syros.kotlin.EventData
import io.syros.kotlin.EventSubscription
import io.syros.kotlin.ExpectedVersion
import io.syros.kotlin.Lease
import io.syros.kotlin.LeaseEnd
import io.syros.kotlin.Step
import io.syros.kotlin.StepFailure
import io.syros.kotlin.SubscribeFrom
import io.syros.kotlin.SyrosClient
import io.syros.kotlin.SyrosException
import io.syros.kotlin.SyrosOptions
import io.syros.kotlin.TestServer
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.async
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.booleanOrNull
import kotlinx.serialization.json.contentOrNull
import kotlinx.serialization.json.doubleOrNull
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import kotlinx.serialization.json.longOrNull
import java.io.File
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.TimeSource

private class StepError(message: String) : Exception(message)

private fun ensure(condition: Boolean, message: () -> String) {
    if (!condition) throw StepError(message())
}

private fun JsonObject.text(name: String): String =
    (this[name] as? JsonPrimitive)?.takeIf { it.isString }?.content ?: throw StepError("step $this needs a string `$name`")

private fun JsonObject.long(name: String, fallback: Long): Long = (this[name] as? JsonPrimitive)?.longOrNull ?: fallback

private val JsonObject.expect: JsonObject get() = (this["expect"] as? JsonObject) ?: JsonObject(emptyMap())

/** Run [call]; check it against `expect.error` (or success when absent); the value on success. */
private suspend fun <T> checkError(step: JsonObject, call: suspend () -> T): T? {
    val wanted = (step.expect["error"] as? JsonPrimitive)?.contentOrNull
    try {
        val value = call()
        ensure(wanted == null) { "expected error $wanted, the call succeeded" }
        return value
    } catch (err: SyrosException) {
        ensure(wanted != null) { "unexpected error ${err.code}: ${err.message}" }
        ensure(err.code == wanted) { "expected error $wanted, got ${err.code}: ${err.message}" }
        return null
    }
}

private class Run(private val server: TestServer, name: String, private val scope: CoroutineScope) {
    private val id = "$name-${ProcessHandle.current().pid()}"
    private var client: SyrosClient? = null
    private val leases = mutableMapOf<String, Lease>()
    private val pending = mutableMapOf<String, Deferred<Lease>>()
    private val subscriptions = mutableMapOf<String, EventSubscription>()
    private val saved = mutableMapOf<String, Map<String, JsonElement>>()

    suspend fun client(): SyrosClient = client ?: SyrosClient.connect(
        SyrosOptions(listOf(server.grpcAddress), connectTimeout = 2000.milliseconds, callTimeout = 10_000.milliseconds),
    ).also { client = it }

    fun resolve(value: JsonElement): JsonElement = when {
        value is JsonPrimitive && value.isString && value.content.startsWith("$") -> {
            val parts = value.content.drop(1).split('.', limit = 2)
            ensure(parts.size == 2) { "reference ${value.content} needs a field" }
            val entry = saved[parts[0]] ?: throw StepError("nothing saved as ${parts[0]}")
            entry[parts[1]] ?: throw StepError("${parts[0]} has no field ${parts[1]}")
        }
        value is JsonPrimitive && value.isString -> JsonPrimitive(value.content.replace("{id}", id))
        value is JsonArray -> JsonArray(value.map(::resolve))
        value is JsonObject -> JsonObject(value.mapValues { resolve(it.value) })
        else -> value
    }

    fun keepLease(name: String?, lease: Lease) {
        if (name == null) return
        saved[name] = mapOf(
            "lease_id" to JsonPrimitive(lease.leaseId),
            "fencing_token" to JsonPrimitive(lease.fencingToken.toLong()),
            "key" to JsonPrimitive(lease.key),
        )
        leases[name] = lease
    }

    fun lease(step: JsonObject): Lease = step.text("lease").let { leases[it] ?: throw StepError("no lease saved as $it") }

    fun subscription(step: JsonObject): EventSubscription =
        step.text("subscription").let { subscriptions[it] ?: throw StepError("no subscription saved as $it") }

    suspend fun scenario(scenario: JsonObject) {
        val steps = scenario["steps"] as? JsonArray ?: throw StepError("a scenario needs `steps`")
        steps.forEachIndexed { index, raw ->
            val step = resolve(raw).jsonObject
            val op = step.text("op")
            try {
                step(op, step)
            } catch (err: StepError) {
                throw StepError("step ${index + 1} ($op): ${err.message}")
            } catch (err: Exception) {
                throw StepError("step ${index + 1} ($op): $err")
            }
        }
    }

    fun finish() {
        pending.values.forEach { it.cancel() }
        subscriptions.values.forEach { it.close() }
        client?.close()
    }

    suspend fun step(op: String, step: JsonObject) {
        val client = client()
        val expect = step.expect
        val ttl = step.long("ttl_ms", 5000).milliseconds
        val wait = step.long("wait_ms", 0).milliseconds
        val save = (step["save"] as? JsonPrimitive)?.contentOrNull
        when (op) {
            "lock" -> checkError(step) { client.lock(step.text("key"), ttl, wait) }?.let { keepLease(save, it) }
            "try_lock" -> {
                val lease = client.tryLock(step.text("key"), ttl)
                expect["acquired"]?.jsonPrimitive?.booleanOrNull?.let { wanted -> ensure((lease != null) == wanted) { "expected acquired=$wanted" } }
                if (lease != null) keepLease(save, lease)
            }
            "lock_async" -> {
                val key = step.text("key")
                pending[step.text("save")] = scope.async { client.lock(key, ttl, wait) }
            }
            "await_lease" -> {
                val name = step.text("name")
                val acquiring = pending.remove(name) ?: throw StepError("nothing pending as $name")
                val within = step.long("within_ms", 5000)
                val lease = withTimeoutOrNull(within.milliseconds) { acquiring.await() }
                    ?: throw StepError("$name was not granted within $within ms")
                keepLease(name, lease)
            }
            "expect_pending" -> {
                val name = step.text("name")
                delay(step.long("for_ms", 0))
                val acquiring = pending[name] ?: throw StepError("nothing pending as $name")
                ensure(!acquiring.isCompleted) { "$name was already granted (out of order)" }
            }
            "release" -> lease(step).release()
            "renew" -> checkError(step) { lease(step).renew() }
            "lease_state" -> {
                val lease = lease(step)
                expect["held"]?.jsonPrimitive?.booleanOrNull?.let { wanted -> ensure(lease.held == wanted) { "expected held=$wanted" } }
                expect["lost"]?.jsonPrimitive?.booleanOrNull?.let { wanted -> ensure(lease.lost == wanted) { "expected lost=$wanted" } }
            }
            "wait_end" -> {
                val end = when (lease(step).awaitEnd(step.long("timeout_ms", 1000).milliseconds)) {
                    LeaseEnd.LOST -> "lost"
                    LeaseEnd.RELEASED -> "released"
                    LeaseEnd.TIMED_OUT -> "timed_out"
                }
                val wanted = expect["end"]?.jsonPrimitive?.content
                ensure(end == wanted) { "expected $wanted, the wait ended $end" }
            }
            "lock_status" -> {
                val holder = client.lockStatus(step.text("key"))
                if (expect["free"]?.jsonPrimitive?.booleanOrNull == true) ensure(holder == null) { "expected free, held by ${holder?.leaseId}" }
                expect["lease_id"]?.jsonPrimitive?.content?.let { wanted ->
                    ensure(holder?.leaseId == wanted) { "expected lease $wanted, holder ${holder?.leaseId}" }
                }
            }
            "force_release" -> client.forceRelease(step.text("key"))
            "cache_set" -> {
                val value = when (val raw = step["value"]) {
                    is JsonPrimitive -> raw.content
                    is JsonObject -> (raw["repeat"]?.jsonPrimitive?.content ?: "x").repeat(raw.long("times", 1).toInt())
                    else -> throw StepError("bad cache value $raw")
                }
                val tags = (step["tags"] as? JsonArray)?.map { it.jsonPrimitive.content } ?: emptyList()
                val ttlMs = (step["ttl_ms"] as? JsonPrimitive)?.longOrNull
                checkError(step) { client.cache.set(step.text("key"), value, ttlMs?.milliseconds, tags) }
            }
            "cache_get" -> {
                val value = client.cache.getString(step.text("key"))
                if (expect["missing"]?.jsonPrimitive?.booleanOrNull == true) ensure(value == null) { "expected no value" }
                expect["value"]?.jsonPrimitive?.content?.let { wanted -> ensure(value == wanted) { "expected \"$wanted\", got $value" } }
            }
            "cache_invalidate_tag" -> {
                val removed = client.cache.invalidateTag(step.text("tag"))
                expect["removed"]?.jsonPrimitive?.longOrNull?.let { wanted -> ensure(removed == wanted) { "removed $removed, expected $wanted" } }
            }
            "append" -> {
                val events = (step["events"] as? JsonArray ?: throw StepError("append needs events")).map {
                    val event = it.jsonObject
                    EventData((event["type"] as? JsonPrimitive)?.content ?: "Event", (event["data"] ?: JsonNull).toString())
                }
                val expected = when (val raw = step["expected"]) {
                    null -> ExpectedVersion.Any
                    is JsonPrimitive -> when {
                        raw.isString && raw.content == "any" -> ExpectedVersion.Any
                        raw.isString && raw.content == "no_stream" -> ExpectedVersion.NoStream
                        raw.longOrNull != null -> ExpectedVersion.Exact(raw.longOrNull!!.toULong())
                        else -> throw StepError("bad expected version $raw")
                    }
                    else -> throw StepError("bad expected version $raw")
                }
                val result = checkError(step) { client.events.append(step.text("stream"), events, expected) }
                expect["last_version"]?.jsonPrimitive?.longOrNull?.let { wanted ->
                    ensure(result?.lastVersion?.toLong() == wanted) { "last version ${result?.lastVersion}, expected $wanted" }
                }
            }
            "read" -> {
                val read = client.events.readStream(step.text("stream"), from = 0u)
                expectList(expect, "versions", read.events.map { JsonPrimitive(it.version.toLong()) })
                expectList(expect, "types", read.events.map { JsonPrimitive(it.eventType) })
            }
            "subscribe" -> {
                val from = when (val raw = step["from"]) {
                    null -> SubscribeFrom.Start
                    is JsonPrimitive -> when {
                        raw.isString && raw.content == "start" -> SubscribeFrom.Start
                        raw.isString && raw.content == "end" -> SubscribeFrom.End
                        raw.longOrNull != null -> SubscribeFrom.At(raw.longOrNull!!.toULong())
                        else -> throw StepError("bad subscription start $raw")
                    }
                    else -> throw StepError("bad subscription start $raw")
                }
                subscriptions[step.text("save")] = client.events.open(step.text("stream"), from)
            }
            "next_events" -> {
                val subscription = subscription(step)
                val deadline = TimeSource.Monotonic.markNow() + step.long("timeout_ms", 5000).milliseconds
                val versions = mutableListOf<JsonElement>()
                while (versions.size < step.long("count", 1)) {
                    val left = -deadline.elapsedNow()
                    val event = subscription.next(if (left.isPositive()) left else 1.milliseconds)
                    ensure(!subscription.ended) { "the subscription ended" }
                    ensure(event != null) { "only got versions $versions in time" }
                    versions += JsonPrimitive(event!!.version.toLong())
                }
                expectList(expect, "versions", versions)
            }
            "expect_no_event" -> {
                val event = subscription(step).next(step.long("within_ms", 500).milliseconds)
                ensure(event == null) { "expected no event, got version ${event?.version}" }
            }
            "close" -> subscription(step).close()
            "start_saga" -> {
                val steps = (step["steps"] as? JsonArray ?: throw StepError("start_saga needs steps")).map {
                    val s = it.jsonObject
                    Step(
                        s.text("name"), s.text("service"), s.text("action"),
                        (s["compensation"] as? JsonPrimitive)?.contentOrNull,
                        s.long("timeout_ms", 0).milliseconds,
                    )
                }
                val saga = client.sagas.start(step.text("name"), steps, (step["input"] ?: JsonObject(emptyMap())).toString())
                if (save != null) saved[save] = mapOf("saga_id" to JsonPrimitive(saga.sagaId))
            }
            "run_worker" -> runWorker(client, step)
            "compare" -> {
                val left = (step["left"] as? JsonPrimitive)?.doubleOrNull ?: throw StepError("compare needs numbers")
                val right = (step["right"] as? JsonPrimitive)?.doubleOrNull ?: throw StepError("compare needs numbers")
                val cmp = (step["cmp"] as? JsonPrimitive)?.content ?: "=="
                val holds = when (cmp) {
                    ">" -> left > right
                    ">=" -> left >= right
                    "==" -> left == right
                    "!=" -> left != right
                    else -> throw StepError("unknown comparison $cmp")
                }
                ensure(holds) { "expected $left $cmp $right" }
            }
            "sleep" -> delay(step.long("ms", 0))
            "restart_server", "start_server" -> server.restart()
            "stop_server" -> server.kill9()
            else -> throw StepError("unknown operation \"$op\"")
        }
    }

    private fun expectList(expect: JsonObject, name: String, got: List<JsonElement>) {
        val wanted = expect[name] as? JsonArray ?: return
        ensure(JsonArray(got) == wanted) { "$name ${JsonArray(got)}, expected $wanted" }
    }

    /** A worker with the scripted handlers until the saga is final. */
    private suspend fun runWorker(client: SyrosClient, step: JsonObject) {
        val sagaId = step.text("saga")
        val calls = java.util.Collections.synchronizedList(mutableListOf<String>())
        val script = (step["script"] as? JsonObject) ?: JsonObject(emptyMap())
        val worker = client.sagas.worker(step.text("service"), maxConcurrent = 4) {
            for ((handler, behaviour) in script) {
                handle(handler) {
                    calls += handler
                    val b = behaviour.jsonObject
                    b["complete"]?.let { return@handle it.toString() }
                    val failure = (b["fail"] as? JsonObject) ?: JsonObject(emptyMap())
                    throw StepFailure(
                        (failure["error_type"] as? JsonPrimitive)?.content ?: "failed",
                        (failure["message"] as? JsonPrimitive)?.content ?: "",
                        (failure["non_retryable"] as? JsonPrimitive)?.booleanOrNull ?: false,
                    )
                }
            }
        }
        val running = worker.start(scope)
        val saga = try {
            client.sagas.wait(sagaId, step.long("timeout_ms", 20_000).milliseconds)
        } catch (err: SyrosException) {
            throw StepError("the saga did not finish in time (${err.code}); calls so far $calls")
        } finally {
            worker.stop()
            running.join()
        }
        (step.expect["calls"] as? JsonArray)?.let { wanted ->
            val got = JsonArray(calls.map(::JsonPrimitive))
            ensure(got == wanted) { "handlers ran $got, expected $wanted" }
        }
        step.expect["state"]?.jsonPrimitive?.content?.let { wanted ->
            ensure(saga.state.name.lowercase() == wanted) { "saga ended ${saga.state.name.lowercase()}, expected $wanted" }
        }
    }
}

fun main(args: Array<String>) {
    val root = System.getenv("SYROS_SDK_DIR")?.let { File(it, "../..") } ?: File(".")
    val dir = File(args.getOrNull(0) ?: File(root, "tests/conformance/scenarios").path)
    val filter = args.getOrNull(1)
    val backend = TestServer.backend
    var passed = 0
    var failed = 0
    val files = dir.listFiles { file -> file.name.endsWith(".json") }?.sortedBy { it.name } ?: emptyList()
    for (file in files) {
        val scenario = try {
            Json.parseToJsonElement(file.readText()).jsonObject
        } catch (err: Exception) {
            println("FAIL ${file.name}: not valid JSON: ${err.message}")
            failed += 1
            continue
        }
        val name = (scenario["name"] as? JsonPrimitive)?.content ?: "unnamed"
        if (filter != null && !name.contains(filter)) continue
        val started = TimeSource.Monotonic.markNow()
        var server: TestServer? = null
        try {
            server = TestServer.start()
            runBlocking {
                val run = Run(server, name, this)
                try {
                    run.scenario(scenario)
                } finally {
                    run.finish()
                }
                coroutineContextCancelChildren()
            }
            passed += 1
            println("PASS $name (${"%.1f".format(started.elapsedNow().inWholeMilliseconds / 1000.0)}s, $backend)")
        } catch (err: Exception) {
            failed += 1
            println("FAIL $name ($backend): ${err.message}")
        } finally {
            server?.close()
        }
    }
    println("$passed passed, $failed failed")
    exitProcess(if (failed > 0 || passed == 0) 1 else 0)
}

/** Cancel what a scenario left running in the background (pending acquires, workers). */
private fun CoroutineScope.coroutineContextCancelChildren() {
    coroutineContext[kotlinx.coroutines.Job]?.children?.forEach { it.cancel() }
}
