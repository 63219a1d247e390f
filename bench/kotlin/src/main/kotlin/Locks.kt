// Lock cycles/s (acquire with TTL 10 s + release) with 32 concurrent coroutines, each on its own
// key: the syros Kotlin SDK against Redisson (RLock, async API, the JVM's favourite Redis lock)
// on the same Redis, in the same run; prints both and the ratio (goal >= 1.0x). Not a test.
//
//   java -cp <class path> LocksKt <syros grpc address> <redis url> [seconds per side]
import io.syros.ClientOptions
import io.syros.LockOptions
import io.syros.kotlin.SyrosClient
import io.syros.SyrosClient as JavaSyrosClient
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.future.await
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import org.redisson.Redisson
import org.redisson.config.Config
import java.lang.management.ManagementFactory
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong
import kotlin.time.Duration.Companion.seconds

private const val LOOPS = 32
private const val TTL_MS = 10_000L

// CPU time of this whole process (every thread, user + kernel): with the window's cycle count, what
// one cycle costs the client side, independent of how busy the shared machine is.
private fun processCpuNanos(): Long =
    (ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean).processCpuTime

private fun measure(name: String, seconds: Int, cycle: suspend (Int) -> Unit): Double = runBlocking(Dispatchers.Default) {
    suspend fun loopUntil(deadline: Long, loop: Int, count: AtomicLong?) {
        while (System.nanoTime() < deadline) {
            cycle(loop)
            count?.incrementAndGet()
        }
    }
    // Warm up (3 s: the JIT compiles the hot path), then count cycles in a fixed window.
    val warm = System.nanoTime() + 3_000_000_000L
    (0 until LOOPS).map { launch { loopUntil(warm, it, null) } }.forEach { it.join() }
    val cycles = AtomicLong()
    val cpuStarted = processCpuNanos()
    val started = System.nanoTime()
    val until = started + seconds * 1_000_000_000L
    (0 until LOOPS).map { launch { loopUntil(until, it, cycles) } }.forEach { it.join() }
    val elapsed = (System.nanoTime() - started) / 1e9
    val cpuPerCycleUs = (processCpuNanos() - cpuStarted) / 1e3 / cycles.get()
    val rate = cycles.get() / elapsed
    println(
        "$name: ${rate.toLong()} cycles/s (${cycles.get()} cycles in ${"%.1f".format(elapsed)} s, $LOOPS loops; " +
            "JVM CPU ${"%.1f".format(cpuPerCycleUs)} µs per cycle)",
    )
    rate
}

private fun measureRedisson(redisUrl: String, seconds: Int, run: Long): Double {
    val config = Config().apply { useSingleServer().setAddress(redisUrl).setConnectionPoolSize(LOOPS) }
    val redisson = Redisson.create(config)
    try {
        return measure("Redisson 3.52 RLock (async)", seconds) { loop ->
            val lock = redisson.getLock("bench:redisson:$run:$loop")
            val owner = loop.toLong() + 1 // Redisson ties a lock to a thread id: one per loop
            lock.lockAsync(TTL_MS, TimeUnit.MILLISECONDS, owner).toCompletableFuture().await()
            lock.unlockAsync(owner).toCompletableFuture().await()
        }
    } finally {
        redisson.shutdown()
    }
}

private fun measureSyros(address: String, seconds: Int, run: Long): Double {
    val client = runBlocking { SyrosClient.connect(address) }
    client.use {
        return measure("syros Kotlin SDK", seconds) { loop ->
            val lease = client.lock("bench:syros:$run:$loop", ttl = (TTL_MS / 1000).seconds, wait = 5.seconds)
            lease.release()
        }
    }
}

// The Java SDK (JNI binding, bindings/java) on the same server, from the same coroutines: what the
// Kotlin SDK's UniFFI + JNA path costs against the JVM's other way into the client core. Either
// its futures awaited, or (`blocking`) its blocking calls on Dispatchers.IO: whether a blocking
// call on a thread pool beats an asynchronous protocol for calls this short.
private fun measureJavaSdk(address: String, seconds: Int, run: Long, blocking: Boolean): Double {
    val options = LockOptions.ttl(java.time.Duration.ofMillis(TTL_MS)).waitFor(java.time.Duration.ofSeconds(5))
    JavaSyrosClient.connect(ClientOptions.builder().address(address).build()).use { client ->
        if (blocking) {
            return measure("syros Java SDK (JNI), blocking calls on Dispatchers.IO", seconds) { loop ->
                withContext(Dispatchers.IO) { client.lock("bench:java:$run:$loop", options).release() }
            }
        }
        return measure("syros Java SDK (JNI), futures awaited", seconds) { loop ->
            val lease = client.lockAsync("bench:java:$run:$loop", options).await()
            lease.releaseAsync().await()
        }
    }
}

fun main(args: Array<String>) {
    val (address, redisUrl) = args
    val seconds = args.getOrNull(2)?.toInt() ?: 5
    val run = ProcessHandle.current().pid()

    // BENCH_ONLY=syros|redisson|java|java-blocking runs one side (to profile it alone); Redisson
    // and the Kotlin SDK by default; BENCH_JAVA_SDK=1 adds both Java SDK sides.
    val only = System.getenv("BENCH_ONLY").orEmpty()
    val peer = if (only.isEmpty() || only == "redisson") measureRedisson(redisUrl, seconds, run) else null
    val ours = if (only.isEmpty() || only == "syros") measureSyros(address, seconds, run) else null
    val withJava = only.isEmpty() && System.getenv("BENCH_JAVA_SDK") == "1"
    val java = if (only == "java" || withJava) measureJavaSdk(address, seconds, run, blocking = false) else null
    val javaBlocking = if (only == "java-blocking" || withJava) measureJavaSdk(address, seconds, run, blocking = true) else null
    if (peer == null) return
    if (ours != null) println("ratio syros Kotlin SDK/Redisson: ${"%.2f".format(ours / peer)}x (goal >= 1.0x)")
    if (java != null) println("ratio syros Java SDK futures/Redisson: ${"%.2f".format(java / peer)}x")
    if (javaBlocking != null) println("ratio syros Java SDK blocking on Dispatchers.IO/Redisson: ${"%.2f".format(javaBlocking / peer)}x")
}
