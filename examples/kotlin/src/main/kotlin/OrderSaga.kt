// The order saga with Kotlin handlers: reserve stock, charge the card, ship. One order completes;
// one whose card is declined is compensated (the reservation released), in reverse order.
// Checks its own outcome; exits 1 if wrong.
//
//   java -cp <class path> OrderSagaKt 127.0.0.1:9090
import io.syros.kotlin.SagaState
import io.syros.kotlin.Step
import io.syros.kotlin.StepFailure
import io.syros.kotlin.SyrosClient
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import java.util.Collections
import java.util.concurrent.ConcurrentHashMap
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.seconds

fun main(args: Array<String>) = runBlocking {
    val client = SyrosClient.connect(args.getOrElse(0) { "127.0.0.1:9090" })
    val service = "orders-${ProcessHandle.current().pid()}"
    val stock = ConcurrentHashMap(mapOf("widget" to 10))
    val log = Collections.synchronizedList(mutableListOf<String>())

    fun input(json: String) = Json.parseToJsonElement(json).jsonObject
    val worker = client.sagas.worker(service) {
        handle("reserve") { task ->
            val order = input(task.inputJson)
            val qty = order["qty"]!!.jsonPrimitive.int
            // Redelivery-safe in a real system: key the reservation by task.idempotencyKey.
            stock.compute(order["item"]!!.jsonPrimitive.content) { _, left -> left!! - qty }
            log += "reserve ${order["order"]}"
            """{"reserved":$qty}"""
        }
        handle("release") { task ->
            val order = input(task.inputJson)
            stock.compute(order["item"]!!.jsonPrimitive.content) { _, left -> left!! + order["qty"]!!.jsonPrimitive.int }
            log += "release ${order["order"]}"
            "{}"
        }
        handle("charge") { task ->
            val order = input(task.inputJson)
            log += "charge ${order["order"]}"
            if (order["card"]!!.jsonPrimitive.content == "declined") {
                throw StepFailure("card_declined", "card declined", nonRetryable = true)
            }
            """{"charged":${order["qty"]!!.jsonPrimitive.int * 5}}"""
        }
        handle("ship") { task ->
            val order = input(task.inputJson)
            log += "ship ${order["order"]}"
            """{"tracking":"T-${order["order"]}"}"""
        }
    }
    val running = worker.start(this)
    val steps = listOf(
        Step("reserve", service, "reserve", compensation = "release"),
        Step("charge", service, "charge"),
        Step("ship", service, "ship"),
    )
    val good = client.sagas.start("order", steps, """{"order":1,"item":"widget","qty":2,"card":"ok"}""")
    val bad = client.sagas.start("order", steps, """{"order":2,"item":"widget","qty":3,"card":"declined"}""")
    val goodDone = async { client.sagas.wait(good.sagaId, 30.seconds) }
    val badDone = async { client.sagas.wait(bad.sagaId, 30.seconds) }
    val (goodSaga, badSaga) = goodDone.await() to badDone.await()
    worker.stop()
    running.join()
    client.close()

    println("order 1: ${goodSaga.state}, ship output ${goodSaga.steps[2].outputJson}")
    println("order 2: ${badSaga.state}; handlers ran: ${log.joinToString()}; widgets left ${stock["widget"]}")
    val problems = listOfNotNull(
        "order 1 ended ${goodSaga.state}".takeIf { goodSaga.state != SagaState.COMPLETED },
        "order 2 ended ${badSaga.state}".takeIf { badSaga.state != SagaState.COMPENSATED },
        "expected 8 widgets left, got ${stock["widget"]}".takeIf { stock["widget"] != 8 },
    )
    if (problems.isNotEmpty()) {
        System.err.println("FAILED: ${problems.joinToString("; ")}")
        exitProcess(1)
    }
}
