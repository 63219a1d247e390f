package io.syros;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class CacheEventsTest {
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

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String text(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    @Test
    void cacheGetSetDeleteAndTags() {
        String k = "k-" + System.nanoTime();
        assertTrue(client.cache().get(k).isEmpty());
        client.cache().set(k, bytes("v1"));
        assertEquals("v1", text(client.cache().get(k).orElseThrow()));
        Optional<Long> expiry = client.cache().set(k + ":a", bytes("a"), CacheOptions.ttl(Duration.ofSeconds(30)).tags("t-" + k));
        assertTrue(expiry.orElseThrow() > System.currentTimeMillis());
        client.cache().set(k + ":b", bytes("b"), CacheOptions.NONE.tags("t-" + k));
        assertEquals(2, client.cache().invalidateTag("t-" + k));
        assertTrue(client.cache().get(k + ":a").isEmpty());
        assertTrue(client.cache().delete(k));
        assertFalse(client.cache().delete(k));
        assertThrows(InvalidArgumentException.class, () -> client.cache().set("", bytes("x")));
    }

    @Test
    void getOrComputeIsSingleFlight() throws Exception {
        String k = "sf-" + System.nanoTime();
        AtomicInteger computed = new AtomicInteger();
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<byte[]>> results = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            results.add(pool.submit(() -> {
                go.await();
                return client.cache().getOrCompute(k, () -> {
                    computed.incrementAndGet();
                    try {
                        Thread.sleep(300);
                    } catch (InterruptedException e) {
                        throw new RuntimeException(e);
                    }
                    return bytes("computed");
                }, CacheOptions.ttl(Duration.ofSeconds(30)));
            }));
        }
        go.countDown();
        for (Future<byte[]> r : results) assertEquals("computed", text(r.get(30, TimeUnit.SECONDS)));
        pool.shutdown();
        assertEquals(1, computed.get(), "one caller computes");
        assertEquals("computed", text(client.cache().get(k).orElseThrow()));
        assertEquals("computed", text(client.cache().getOrCompute(k, () -> { throw new AssertionError("hit"); })));

        String failing = "fail-" + System.nanoTime();
        assertThrows(IllegalStateException.class, () -> client.cache().getOrCompute(failing, () -> {
            throw new IllegalStateException("no value");
        }));
        assertTrue(client.cache().get(failing).isEmpty(), "nothing stored after a failed computation");
    }

    @Test
    void appendReadAndVersionConflicts() {
        String stream = "orders-" + System.nanoTime();
        AppendResult first = client.events().append(stream, ExpectedVersion.NO_STREAM,
                EventData.of("created", "{\"id\":1}"), EventData.of("paid", "{\"amount\":5}"));
        assertEquals(1, first.lastVersion(), "versions count from 0");
        VersionConflictException conflict = assertThrows(VersionConflictException.class,
                () -> client.events().append(stream, ExpectedVersion.exact(0), EventData.of("late", "{}")));
        assertEquals("version_conflict", conflict.code());
        assertFalse(conflict.isRetryable());
        assertThrows(VersionConflictException.class,
                () -> client.events().append(stream, ExpectedVersion.NO_STREAM, EventData.of("again", "{}")));
        assertEquals(2, client.events().append(stream, ExpectedVersion.exact(1), EventData.of("shipped", "{}")).lastVersion());
        ReadResult read = client.events().read(stream);
        assertEquals(List.of(0L, 1L, 2L), read.events().stream().map(RecordedEvent::version).toList());
        assertEquals(List.of("created", "paid", "shipped"), read.events().stream().map(RecordedEvent::type).toList());
        assertEquals("{\"id\":1}", read.events().get(0).dataJson().replace(" ", ""));
        assertEquals(2, read.last());
        ReadResult backwards = client.events().readBackwards(stream, 2);
        assertEquals(List.of(2L, 1L), backwards.events().stream().map(RecordedEvent::version).toList());
        ReadResult all = client.events().readAll(read.events().get(0).globalPosition(), 100);
        assertTrue(all.events().stream().anyMatch(e -> e.stream().equals(stream) && e.version() == 2));
    }

    @Test
    void subscriptionCatchesUpThenFollowsAndCloses() throws Exception {
        String stream = "sub-" + System.nanoTime();
        client.events().append(stream, ExpectedVersion.ANY, EventData.of("a", "{}"), EventData.of("b", "{}"));
        try (Subscription sub = client.events().subscribe(stream, SubscribeFrom.START)) {
            assertEquals(0, sub.next(Duration.ofSeconds(10)).orElseThrow().version());
            assertTrue(sub.hasNext());
            assertEquals(1, sub.next().version());
            long start = System.nanoTime();
            assertTrue(sub.next(Duration.ofMillis(300)).isEmpty(), "no event yet");
            assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(250));
            client.events().append(stream, ExpectedVersion.exact(1), EventData.of("c", "{}"));
            RecordedEvent live = sub.next(Duration.ofSeconds(10)).orElseThrow();
            assertEquals(2, live.version());
            assertEquals("c", live.type());
            Thread closer = new Thread(() -> {
                try {
                    Thread.sleep(300);
                } catch (InterruptedException ignored) {
                }
                sub.close();
            });
            closer.start();
            assertFalse(sub.hasNext(), "close ends a pending wait");
            assertTrue(sub.isEnded());
        }
    }

    @Test
    void subscriptionSurvivesAServerRestart() throws Exception {
        try (SyrosServer own = SyrosServer.start(); SyrosClient c = own.connect()) {
            String stream = "restart-" + System.nanoTime();
            c.events().append(stream, ExpectedVersion.ANY, EventData.of("a", "{}"));
            try (Subscription sub = c.events().subscribe(stream, SubscribeFrom.START)) {
                assertEquals(0, sub.next(Duration.ofSeconds(10)).orElseThrow().version());
                own.restart();
                c.events().append(stream, ExpectedVersion.exact(0), EventData.of("b", "{}"));
                assertEquals(1, sub.next(Duration.ofSeconds(30)).orElseThrow().version());
            }
        }
    }

    @Test
    void subscribeAllAsAFlowPublisher() throws Exception {
        String stream = "flow-" + System.nanoTime();
        AppendResult appended = client.events().append(stream, ExpectedVersion.ANY,
                EventData.of("x", "{}"), EventData.of("y", "{}"));
        List<String> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        CountDownLatch two = new CountDownLatch(2);
        try (Subscription sub = client.events().subscribeAll(SubscribeFrom.at(appended.firstPosition()))) {
            sub.publisher().subscribe(new java.util.concurrent.Flow.Subscriber<RecordedEvent>() {
                public void onSubscribe(java.util.concurrent.Flow.Subscription s) {
                    s.request(Long.MAX_VALUE);
                }

                public void onNext(RecordedEvent e) {
                    if (e.stream().equals(stream)) {
                        seen.add(e.type());
                        two.countDown();
                    }
                }

                public void onError(Throwable t) {}

                public void onComplete() {}
            });
            assertTrue(two.await(20, TimeUnit.SECONDS), "seen " + seen);
        }
        assertEquals(List.of("x", "y"), seen);
    }

    @Test
    void healthOwnerAndToken() {
        client.checkHealth();
        assertFalse(client.owner().isEmpty());
        client.setAuthToken("not-checked-by-this-server");
        client.checkHealth();
        client.setAuthToken(null);
    }
}
