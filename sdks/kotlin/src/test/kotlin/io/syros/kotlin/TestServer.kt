package io.syros.kotlin

import kotlinx.serialization.json.Json
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/**
 * The one way the Kotlin tests (and tests/conformance/kotlin) start a server: a real
 * `syros serve` on ephemeral ports (GRPC_PORT=0 ...) that reports its addresses in
 * SYROS_READY_FILE, the mechanism of tests/launcher (Rust) and the Node helper. The binary is
 * $SYROS_BIN; `SYROS_TEST_BACKEND=redis-postgres` runs it on SYROS_TEST_REDIS_URL and
 * SYROS_TEST_DATABASE_URL. A test that cannot start its server fails with the reason and the
 * server's log; it never skips.
 */
class TestServer private constructor(private val extraEnv: Map<String, String>) : AutoCloseable {
    companion object {
        private const val READY_TIMEOUT_MS = 60_000L

        /** Start a server and wait until it reports ready. */
        fun start(extraEnv: Map<String, String> = emptyMap()): TestServer = TestServer(extraEnv).also { it.spawn() }

        /** The server binary from SYROS_BIN. */
        fun syrosBin(): String {
            val bin = System.getenv("SYROS_BIN")
                ?: error("SYROS_BIN is not set: build the server (`cargo build -p syros-server`) and export SYROS_BIN=<target dir>/debug/syros (scripts/kotlin-sdk.sh does this)")
            check(File(bin).canExecute()) { "SYROS_BIN=$bin is not an executable file" }
            return bin
        }

        /** `embedded` (default) or `redis-postgres`. */
        val backend: String get() = System.getenv("SYROS_TEST_BACKEND") ?: "embedded"

        private fun backendEnv(namespace: String): Map<String, String> = when (backend) {
            "embedded" -> emptyMap()
            "redis-postgres" -> {
                val redis = System.getenv("SYROS_TEST_REDIS_URL") ?: error("SYROS_TEST_REDIS_URL is not set (the redis-postgres backend needs it)")
                val database = System.getenv("SYROS_TEST_DATABASE_URL") ?: error("SYROS_TEST_DATABASE_URL is not set (the redis-postgres backend needs it)")
                mapOf("REDIS_URL" to redis, "DATABASE_URL" to database, "SYROS_NAMESPACE" to namespace)
            }
            else -> error("SYROS_TEST_BACKEND=$backend: expected \"embedded\" or \"redis-postgres\"")
        }
    }

    private val dir: File = Files.createTempDirectory("syros-kotlin-test-").toFile()
    private val namespace = "k${ProcessHandle.current().pid()}${System.nanoTime()}"
    private var process: Process? = null
    private var ports: Map<String, String>? = null
    private var starts = 0

    /** `127.0.0.1:<grpc port>` (the same across restarts). */
    val grpcAddress: String get() = ports?.get("grpc") ?: error("the server was never started")

    /** The server's process id while it runs. */
    val pid: Long? get() = process?.pid()

    /** Start (again, on the same ports and data) and wait for the ready file. */
    fun spawn() {
        val readyFile = File(dir, "ready.json")
        readyFile.delete()
        starts += 1
        val log = File(dir, "syros-$starts.log")
        fun port(name: String) = ports?.get(name)?.substringAfterLast(':') ?: "0"
        val builder = ProcessBuilder(syrosBin(), "serve")
            .redirectErrorStream(true)
            .redirectOutput(log)
        builder.environment().apply {
            put("SYROS_DATA_DIR", File(dir, "data").path)
            put("LOG_LEVEL", "info")
            putAll(backendEnv(namespace))
            putAll(extraEnv)
            put("GRPC_PORT", port("grpc"))
            put("REST_PORT", port("rest"))
            put("WS_PORT", port("websocket"))
            put("SYROS_READY_FILE", readyFile.path)
        }
        val started = builder.start()
        process = started
        val deadline = System.currentTimeMillis() + READY_TIMEOUT_MS
        while (true) {
            val ready = runCatching {
                Json.parseToJsonElement(readyFile.readText()).jsonObject.mapValues { it.value.jsonPrimitive.content }
            }.getOrNull()
            if (ready != null && ready["grpc"] != null && ready["rest"] != null && ready["websocket"] != null) {
                if (ports == null) ports = ready
                return
            }
            if (!started.isAlive) error("syros serve exited (${started.exitValue()}) before it was ready:\n${log()}")
            if (System.currentTimeMillis() > deadline) error("syros serve was not ready within $READY_TIMEOUT_MS ms:\n${log()}")
            Thread.sleep(10)
        }
    }

    /** SIGKILL, as a crash would; returns once the process is gone. */
    fun kill9() {
        val running = process ?: return
        process = null
        running.destroyForcibly()
        running.waitFor(30, TimeUnit.SECONDS)
    }

    /** Kill -9 and start again: same data, same ports. */
    fun restart() {
        kill9()
        spawn()
    }

    /** Everything the server logged, over all its starts. */
    fun log(): String = (1..starts).joinToString("\n--- restart ---\n") { File(dir, "syros-$it.log").takeIf(File::exists)?.readText() ?: "" }

    /** Kill it and remove its files. */
    override fun close() {
        kill9()
        dir.deleteRecursively()
    }
}

/**
 * A test body run to completion on this thread. Returns Unit whatever the body's last expression
 * is: JUnit silently skips a test method that returns a value.
 */
fun blockingTest(block: suspend kotlinx.coroutines.CoroutineScope.() -> Unit): Unit = kotlinx.coroutines.runBlocking { block() }

/** A test class with one server and one connected client for all its tests. */
@org.junit.jupiter.api.TestInstance(org.junit.jupiter.api.TestInstance.Lifecycle.PER_CLASS)
abstract class ServerTest {
    protected lateinit var server: TestServer
    protected lateinit var client: SyrosClient

    @org.junit.jupiter.api.BeforeAll
    fun startServer() = blockingTest {
        server = TestServer.start()
        client = SyrosClient.connect(server.grpcAddress)
    }

    @org.junit.jupiter.api.AfterAll
    fun stopServer() {
        client.close()
        server.close()
    }
}
