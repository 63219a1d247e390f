package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeObject;
import io.syros.internal.NativeResult;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A saga step runner for one service. It pulls tasks from the client core (which holds at most
 * {@code maxConcurrent} at once, reopens the task feed after failures and reports a task failed
 * when it times out) and runs each handler on a Java executor: the one given to
 * {@link Builder#executor}, or its own pool of {@code maxConcurrent} daemon threads.
 * Build it with {@link SyrosClient#worker(String)}; {@link #close()} stops it and waits for the
 * tasks in hand.
 */
public final class Worker extends NativeObject implements AutoCloseable {
    private static final AtomicInteger THREADS = new AtomicInteger();

    private final String service;
    private final String workerId;
    private final Map<String, TaskHandler> handlers;
    private final Executor executor;
    private final ExecutorService ownExecutor;
    private final Thread poller;
    private volatile boolean stopped;

    private Worker(Builder b, NativeResult result) {
        super(result.takeHandle());
        this.service = b.service;
        this.workerId = Json.getString(result.map(), "worker_id");
        this.handlers = Map.copyOf(b.handlers);
        if (b.executor != null) {
            this.executor = b.executor;
            this.ownExecutor = null;
        } else {
            this.ownExecutor = Executors.newFixedThreadPool(b.maxConcurrent, runnable -> {
                Thread thread = new Thread(runnable, "syros-worker-" + b.service + "-" + THREADS.incrementAndGet());
                thread.setDaemon(true);
                return thread;
            });
            this.executor = ownExecutor;
        }
        this.poller = new Thread(this::pollLoop, "syros-worker-poll-" + b.service);
        poller.setDaemon(true);
        poller.start();
    }

    /** The id the server knows this worker by. */
    public String workerId() {
        return workerId;
    }

    /** The service it runs tasks of. */
    public String service() {
        return service;
    }

    /** Tasks held now (handed out or buffered, not yet completed). */
    public long outstanding() {
        Object n = call("outstanding").value();
        return n instanceof Number number ? number.longValue() : 0;
    }

    private void pollLoop() {
        while (!stopped) {
            Object value;
            try {
                value = call("poll_task", Json.obj().put("timeout_ms", 500).toString(), null).value();
            } catch (SyrosException e) {
                if (stopped) return;
                sleep(200);
                continue;
            }
            if (!(value instanceof Map<?, ?>)) continue;
            @SuppressWarnings("unchecked")
            Task task = Task.from((Map<String, Object>) value);
            try {
                executor.execute(() -> run(task));
            } catch (RejectedExecutionException e) {
                complete(task, failure("RejectedExecution", "the worker's executor refused the task", false));
            }
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String failure(String type, String message, boolean nonRetryable) {
        return Json.obj().put("error_type", type).put("message", message).put("non_retryable", nonRetryable).toString();
    }

    private void run(Task task) {
        TaskHandler handler = handlers.get(task.handler());
        String outcome;
        if (handler == null) {
            outcome = failure("UnknownHandler", "no handler " + task.handler() + " in worker " + service, true);
        } else {
            try {
                String output = handler.handle(task);
                outcome = Json.obj().put("output_json", output == null ? "null" : output).toString();
            } catch (TaskFailedException e) {
                outcome = failure(e.errorType(), String.valueOf(e.getMessage()), e.isNonRetryable());
            } catch (Exception e) {
                outcome = failure(e.getClass().getSimpleName(), String.valueOf(e.getMessage()), false);
            }
        }
        complete(task, outcome);
    }

    private void complete(Task task, String outcome) {
        Map<String, Object> args = new HashMap<>(Json.parseObject(outcome));
        args.put("task_id", task.taskId());
        try {
            call("complete", Json.write(args), null);
        } catch (SyrosException e) {
            // The core reports the task timed out by itself; the saga's policy retries it.
        }
    }

    /** Whether {@code task} is still assigned to this worker (a long handler can stop early). */
    public boolean heartbeat(Task task) {
        return Boolean.TRUE.equals(call("heartbeat", Json.obj().put("task_id", task.taskId()).toString(), null).value());
    }

    /** Stop taking tasks (returns at once). */
    public void stop() {
        stopped = true;
        call("stop");
    }

    /** Stop, wait for every task in hand to complete (at most {@code timeout}), end the poller. */
    public void close(Duration timeout) {
        stop();
        callAsync("stop_and_drain", null, null).orTimeout(timeout.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS)
                .exceptionally(e -> null).join();
        try {
            poller.join(timeout.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (ownExecutor != null) ownExecutor.shutdown();
    }

    /** {@link #close(Duration)} with 30 s. */
    @Override
    public void close() {
        close(Duration.ofSeconds(30));
    }

    /** Builds and starts a {@link Worker}: {@code client.worker("svc").action(...).start()}. */
    public static final class Builder {
        private final SyrosClient client;
        private final String service;
        private final Map<String, TaskHandler> handlers = new HashMap<>();
        private int maxConcurrent = 16;
        private Executor executor;

        Builder(SyrosClient client, String service) {
            this.client = client;
            this.service = service;
        }

        /** Handle the action {@code name}. */
        public Builder action(String name, TaskHandler handler) {
            handlers.put(name, handler);
            return this;
        }

        /** Handle the compensation {@code name}. */
        public Builder compensation(String name, TaskHandler handler) {
            handlers.put(name, handler);
            return this;
        }

        /** At most this many tasks in hand at once (default 16). */
        public Builder maxConcurrent(int max) {
            if (max < 1) throw new IllegalArgumentException("maxConcurrent must be at least 1");
            this.maxConcurrent = max;
            return this;
        }

        /** Run handlers on this executor (default: the worker's own pool of daemon threads). */
        public Builder executor(Executor executor) {
            this.executor = executor;
            return this;
        }

        /** Register with the server and start pulling tasks. */
        public Worker start() {
            NativeResult result = client.op("worker", Json.obj().put("service", service)
                    .put("max_concurrent", maxConcurrent).toString(), null);
            return new Worker(this, result);
        }
    }
}
