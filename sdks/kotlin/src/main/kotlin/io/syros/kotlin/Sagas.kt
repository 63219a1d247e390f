package io.syros.kotlin

import io.syros.kotlin.ffi.StartSaga
import io.syros.kotlin.ffi.StepDefinition
import io.syros.kotlin.ffi.TaskOutcome
import io.syros.kotlin.ffi.TaskRecord
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import kotlin.coroutines.cancellation.CancellationException
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * One step of a saga to start: [action] runs on a worker of [service]; when a later step fails
 * for good, [compensation] undoes it.
 *
 * @property timeout start-to-close limit of one attempt (zero: the server's default).
 * @property retry overrides the saga's retry policy.
 */
data class Step(
    val name: String,
    val service: String,
    val action: String,
    val compensation: String? = null,
    val timeout: Duration = Duration.ZERO,
    val retry: StepRetry? = null,
)

/**
 * A step handler's deliberate failure: [errorType] is matched against the retry policy's
 * non-retryable error types; [nonRetryable] fails the step at once (then the saga compensates).
 */
class StepFailure(val errorType: String, message: String, val nonRetryable: Boolean = false) : Exception(message)

/**
 * A task handed to a step handler. [idempotencyKey] is the same for every redelivery and retry of
 * this step's action (or compensation): use it to make the handler safe to run twice.
 */
class StepTask internal constructor(private val record: TaskRecord, private val worker: io.syros.kotlin.ffi.Worker) {
    val sagaId: String get() = record.sagaId
    val stepName: String get() = record.stepName
    val handler: String get() = record.handler
    val isCompensation: Boolean get() = record.isCompensation
    val attempt: Int get() = record.attempt.toInt()
    val idempotencyKey: String get() = record.idempotencyKey
    val inputJson: String get() = record.inputJson

    /** Outputs of the completed steps by step name (a JSON object). */
    val previousOutputsJson: String get() = record.previousOutputsJson

    /** The attempt is timed out (and reported failed) after this. */
    val timeout: Duration get() = record.timeoutMs.toLong().milliseconds

    /** Whether the task is still this worker's: a long handler can stop early when it is not. */
    suspend fun heartbeat(): Boolean = ffi { worker.heartbeat(record.taskId) }

    override fun toString(): String = "StepTask($handler, saga=$sagaId, step=$stepName, attempt=$attempt)"
}

/** A step handler: returns the step's output (JSON); throws to fail the attempt. */
typealias StepHandler = suspend (StepTask) -> String

/** Sagas: start, inspect, cancel, wait, and run their steps with [worker]. */
class Sagas internal constructor(private val handle: io.syros.kotlin.ffi.Client) {
    /** Start a saga (or get the one started with the same [idempotencyKey]). */
    suspend fun start(
        name: String,
        steps: List<Step>,
        inputJson: String = "{}",
        idempotencyKey: String? = null,
        retry: StepRetry? = null,
    ): SagaInfo {
        val definitions = steps.map {
            StepDefinition(it.name, it.service, it.action, it.compensation, it.timeout.toMillis("timeout"), it.retry)
        }
        return ffi { handle.startSaga(StartSaga(name, definitions, inputJson, idempotencyKey, retry)) }
    }

    /** One saga. */
    suspend fun get(sagaId: String): SagaInfo = ffi { handle.getSaga(sagaId) }

    /** Sagas, newest first, optionally of one [state] and/or [name] ([limit] 0: the default). */
    suspend fun list(state: SagaState? = null, name: String? = null, limit: Int = 0): List<SagaInfo> =
        ffi { handle.listSagas(state, name, limit.toUInt()) }

    /** Cancel a saga: what completed is compensated. */
    suspend fun cancel(sagaId: String): SagaInfo = ffi { handle.cancelSaga(sagaId) }

    /** Wait until the saga is final, at most [timeout] (then [SyrosException.DeadlineExceeded]). */
    suspend fun wait(sagaId: String, timeout: Duration = 60.seconds): SagaInfo =
        ffi { handle.waitSaga(sagaId, timeout.toMillis("timeout")) }

    /**
     * A step runner for [service]'s tasks, holding at most [maxConcurrent] at once, with the
     * handlers [configure] registers by name. Start it with [SagaWorker.run] or [SagaWorker.start].
     *
     * ```
     * val worker = client.sagas.worker("payments") {
     *     handle("charge") { task -> charge(task.inputJson, task.idempotencyKey) }
     *     handle("refund") { task -> refund(task.inputJson, task.idempotencyKey) }
     * }
     * val job = worker.start(scope)
     * ```
     */
    suspend fun worker(service: String, maxConcurrent: Int = 16, configure: SagaWorker.Handlers.() -> Unit): SagaWorker {
        val handlers = SagaWorker.Handlers().apply(configure)
        val native = ffi { handle.worker(service, maxConcurrent.toUInt()) }
        return SagaWorker(service, native, handlers.byName.toMap())
    }
}

/**
 * A saga step runner: pulls tasks from the client core and runs each handler in a child
 * coroutine of [run]'s caller (so on the caller's dispatcher), then reports its outcome. A
 * handler that returns completes the step with its output; one that throws [StepFailure] fails
 * it as said there; anything else thrown (but a VirtualMachineError) fails the attempt (retried
 * by the policy) with its class name as the error type. A task with no handler fails non-retryably
 * (`unknown_handler`).
 */
class SagaWorker internal constructor(
    /** The worker service whose tasks it runs. */
    val service: String,
    private val handle: io.syros.kotlin.ffi.Worker,
    private val handlers: Map<String, StepHandler>,
) {
    /** Registers handlers by name (action and compensation names alike). */
    class Handlers internal constructor() {
        internal val byName = mutableMapOf<String, StepHandler>()

        /** Run [handler] for tasks of the action or compensation [name]. */
        fun handle(name: String, handler: StepHandler) {
            byName[name] = handler
        }
    }

    /** The id the server knows this worker by. */
    val workerId: String get() = handle.workerId()

    /** Tasks held now (handed out or buffered, not yet completed). */
    val outstanding: Long get() = handle.outstanding().toLong()

    /**
     * Pull and run tasks until [stop] is called (then return once the running handlers are done)
     * or the caller is cancelled (then running handlers are cancelled and their tasks reported
     * failed, to be retried elsewhere).
     */
    suspend fun run() {
        try {
            coroutineScope {
                while (true) {
                    val task = ffi { handle.pollTask(null) } ?: break
                    launch { runTask(task) }
                }
            }
        } finally {
            handle.stop()
        }
    }

    /** [run] in [scope]; cancel the job (or [stop]) to end it. */
    fun start(scope: CoroutineScope): Job = scope.launch { run() }

    /** Stop taking tasks (idempotent, returns at once); [run] returns once its handlers are done. */
    fun stop() = handle.stop()

    /** Stop, then wait until every task handed out has been completed (or timed out). */
    suspend fun stopAndDrain() = ffi { handle.stopAndDrain() }

    private suspend fun runTask(record: TaskRecord) {
        val handler = handlers[record.handler]
        val outcome = if (handler == null) {
            TaskOutcome.Failed("unknown_handler", "no handler registered for ${record.handler} in service $service", true)
        } else {
            try {
                TaskOutcome.Completed(handler(StepTask(record, handle)))
            } catch (err: CancellationException) {
                withContext(NonCancellable) {
                    runCatching { handle.complete(record.taskId, TaskOutcome.Failed("cancelled", "the worker was cancelled", false)) }
                }
                throw err
            } catch (err: StepFailure) {
                TaskOutcome.Failed(err.errorType, err.message ?: err.errorType, err.nonRetryable)
            } catch (err: VirtualMachineError) {
                throw err
            } catch (err: Throwable) {
                // Errors too (`TODO()`'s NotImplementedError, a failed `assert`): the task is
                // reported at once instead of left to time out.
                TaskOutcome.Failed(err::class.simpleName ?: "Throwable", err.message ?: err.toString(), false)
            }
        }
        // false: the task had timed out and went to another worker; nothing more to do here.
        ffi { handle.complete(record.taskId, outcome) }
    }
}
