package io.syros;

import static org.junit.jupiter.api.Assertions.*;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class SagasTest {
    static SyrosServer server;
    static SyrosClient client;

    @BeforeAll
    static void start() throws Exception {
        server = SyrosServer.start();
        client = server.connect();
    }

    @AfterAll
    static void stop() throws Exception {
        client.close();
        server.close();
    }

    @Test
    void sagaWithJavaHandlersCompletes() throws Exception {
        String service = "inventory-" + System.nanoTime();
        List<String> threads = new CopyOnWriteArrayList<>();
        ExecutorService executor = Executors.newFixedThreadPool(2, r -> new Thread(r, "user-executor"));
        try (Worker worker = client.worker(service)
                .action("reserve", task -> {
                    threads.add(Thread.currentThread().getName());
                    assertTrue(task.inputJson().contains("42"));
                    return "{\"reserved\":true}";
                })
                .action("charge", task -> {
                    assertTrue(task.previousOutputsJson().contains("reserved"), task.previousOutputsJson());
                    return "{\"charged\":5}";
                })
                .maxConcurrent(4).executor(executor).start()) {
            assertNotNull(worker.workerId());
            SagaInfo saga = client.sagas().start(SagaDefinition.builder("order")
                    .step("reserve", service, "reserve", null)
                    .step("charge", service, "charge", null)
                    .input("{\"order\":42}").idempotencyKey("order-" + service).build());
            SagaInfo done = client.sagas().await(saga.sagaId(), Duration.ofSeconds(60));
            assertEquals(SagaState.COMPLETED, done.state());
            assertTrue(done.steps().get(1).outputJson().contains("charged"));
            assertEquals(List.of("user-executor"), threads.stream().distinct().toList(), "handlers run on the given executor");
            // Starting again with the same idempotency key returns the same saga.
            SagaInfo again = client.sagas().start(SagaDefinition.builder("order")
                    .step("reserve", service, "reserve", null).idempotencyKey("order-" + service).build());
            assertEquals(saga.sagaId(), again.sagaId());
            assertEquals(saga.sagaId(), client.sagas().get(saga.sagaId()).sagaId());
            assertTrue(client.sagas().list(SagaState.COMPLETED, "order", 50).stream()
                    .anyMatch(s -> s.sagaId().equals(saga.sagaId())));
        } finally {
            executor.shutdown();
        }
    }

    @Test
    void failedStepCompensatesCompletedStepsInReverse() throws Exception {
        String service = "payments-" + System.nanoTime();
        List<String> calls = new CopyOnWriteArrayList<>();
        try (Worker worker = client.worker(service)
                .action("reserve", task -> { calls.add("reserve"); return "{}"; })
                .compensation("release_inventory", task -> {
                    assertTrue(task.isCompensation());
                    calls.add("release_inventory");
                    return null;
                })
                .action("ship", task -> { calls.add("ship"); return "{}"; })
                .compensation("unship", task -> { calls.add("unship"); return null; })
                .action("charge", task -> {
                    calls.add("charge");
                    throw new TaskFailedException("card_declined", "declined", true);
                })
                .start()) {
            SagaInfo saga = client.sagas().start(SagaDefinition.builder("order")
                    .step("reserve", service, "reserve", "release_inventory")
                    .step("ship", service, "ship", "unship")
                    .step("charge", service, "charge", null).build());
            SagaInfo done = client.sagas().awaitAsync(saga.sagaId(), Duration.ofSeconds(60)).get(90, TimeUnit.SECONDS);
            assertEquals(SagaState.COMPENSATED, done.state());
            assertEquals(List.of("reserve", "ship", "charge", "unship", "release_inventory"), calls);
            assertEquals("card_declined", done.steps().get(2).attempts().get(0).errorType());
        }
    }

    @Test
    void cancelAndUnknownSagas() {
        String service = "idle-" + System.nanoTime();
        SagaInfo saga = client.sagas().start(SagaDefinition.builder("never-run")
                .step("one", service, "act", "undo").build());
        SagaInfo cancelled = client.sagas().cancel(saga.sagaId());
        assertTrue(cancelled.state() == SagaState.CANCELLED || cancelled.state() == SagaState.COMPENSATING,
                cancelled.state().toString());
        assertThrows(NotFoundException.class, () -> client.sagas().get("no-such-saga"));
        assertThrows(DeadlineExceededException.class, () -> client.sagas().await(
                client.sagas().start(SagaDefinition.builder("slow").step("one", service, "act", null).build()).sagaId(),
                Duration.ofMillis(300)));
    }
}
