package io.syros;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class LocksTest {
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

    static String key(String name) {
        return name + "-" + System.nanoTime();
    }

    @Test
    void lockReleaseAndFencingTokensIncrease() {
        String key = key("fence");
        long first;
        try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)))) {
            first = lease.fencingToken();
            assertTrue(first > 0);
            assertEquals(key, lease.key());
            assertTrue(lease.isHeld());
            assertFalse(lease.isLost());
            assertEquals(lease.info().leaseId(), client.lockStatus(key).orElseThrow().leaseId());
        }
        assertTrue(client.lockStatus(key).isEmpty(), "try-with-resources released the lease");
        try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)))) {
            assertTrue(lease.fencingToken() > first);
        }
    }

    @Test
    void heldLockTimesOutWithTheHolderNamed() {
        String key = key("held");
        try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)).owner("holder-a"))) {
            LockTimeoutException e = assertThrows(LockTimeoutException.class,
                    () -> client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofMillis(200))));
            assertEquals("lock_timeout", e.code());
            assertEquals("holder-a", e.details().get("holder_owner"), e.details().toString());
            assertTrue(client.tryLock(key, LockOptions.ttl(Duration.ofSeconds(5))).isEmpty());
        }
        Optional<Lease> free = client.tryLock(key, LockOptions.ttl(Duration.ofSeconds(5)));
        assertTrue(free.isPresent());
        free.get().release();
        free.get().release(); // idempotent
    }

    @Test
    void lockAsyncWaitsForTheReleaseAndCancelLeavesNothingHeld() throws Exception {
        String key = key("async");
        Lease first = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)));
        CompletableFuture<Lease> waiting = client.lockAsync(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(20)));
        Thread.sleep(200);
        assertFalse(waiting.isDone());
        first.release();
        Lease second = waiting.get(10, TimeUnit.SECONDS);
        assertTrue(second.fencingToken() > first.fencingToken());

        CompletableFuture<Lease> cancelled = client.lockAsync(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(20)));
        Thread.sleep(200);
        assertTrue(cancelled.cancel(true));
        second.release();
        Thread.sleep(300);
        assertTrue(client.lockStatus(key).isEmpty(), "a cancelled lockAsync must not leave a lease held");
    }

    static java.util.Set<Thread> coreThreads() {
        java.util.Set<Thread> threads = new java.util.HashSet<>();
        for (Thread thread : Thread.getAllStackTraces().keySet()) {
            if (thread.getName().equals("syros-core")) {
                threads.add(thread);
            }
        }
        return threads;
    }

    @Test
    void asyncResultsLeaveTheCoreThreadsAttachedAsDaemons() throws Exception {
        String key = key("attached");
        for (int i = 0; i < 20; i++) {
            client.lockAsync(key, LockOptions.ttl(Duration.ofSeconds(5))).get(10, TimeUnit.SECONDS)
                    .releaseAsync().get(10, TimeUnit.SECONDS);
        }
        java.util.Set<Thread> attached = coreThreads();
        assertFalse(attached.isEmpty(), "no core thread stayed attached after completing futures");
        assertTrue(attached.stream().allMatch(Thread::isDaemon), "an attached core thread would keep the JVM from exiting");
        for (int i = 0; i < 200; i++) {
            client.lockAsync(key, LockOptions.ttl(Duration.ofSeconds(5))).get(10, TimeUnit.SECONDS)
                    .releaseAsync().get(10, TimeUnit.SECONDS);
        }
        assertTrue(coreThreads().containsAll(attached), "core threads were detached and attached again");
    }

    @Test
    void statusListAndForceRelease() {
        String prefix = key("list") + ":";
        Lease a = client.lock(prefix + "a", LockOptions.ttl(Duration.ofSeconds(10)));
        Lease b = client.lock(prefix + "b", LockOptions.ttl(Duration.ofSeconds(10)));
        List<LeaseInfo> listed = client.listLocks(prefix, 0);
        assertEquals(2, listed.size());
        LeaseInfo dropped = client.forceRelease(prefix + "a").orElseThrow();
        assertEquals(a.info().leaseId(), dropped.leaseId());
        assertTrue(client.lockStatus(prefix + "a").isEmpty());
        assertThrows(LockNotHeldException.class, a::renew);
        b.release();
    }

    @Test
    void leaseSurvivesAPauseOfTheCallingThread() throws Exception {
        // TTL 1.5 s: the core renews about every 500 ms. The calling thread does nothing for
        // 3 renewal intervals and then some: renewal runs in Rust, so the lease is still held.
        String key = key("pause");
        try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofMillis(1500)))) {
            Thread.sleep(1500 + 500);
            assertTrue(lease.isHeld());
            assertFalse(lease.isLost());
            assertEquals(lease.info().leaseId(), client.lockStatus(key).orElseThrow().leaseId());
            assertTrue(lease.info().expiresAtMs() > System.currentTimeMillis(), "the expiry moved forward");
        }
    }

    @Test
    void onLostFiresWhenTheServerIsGonePastTheTtl() throws Exception {
        try (SyrosServer own = SyrosServer.start(); SyrosClient c = own.connect()) {
            Lease lease = c.lock(key("lost"), LockOptions.ttl(Duration.ofMillis(1500)));
            CountDownLatch lost = new CountDownLatch(1);
            lease.onLost(lost::countDown);
            own.kill();
            assertTrue(lost.await(20, TimeUnit.SECONDS), "onLost did not fire");
            assertTrue(lease.isLost());
            assertEquals("lost", lease.awaitEnd(Duration.ofSeconds(1)));
        }
    }

    @Test
    void fourJvmsKeepASharedCounterExact() throws Exception {
        Path file = Files.createTempFile("syros-counter-", ".txt");
        Files.writeString(file, "0");
        String key = key("counter");
        int perProcess = 25;
        List<Process> processes = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            processes.add(ChildJvm.start(CounterWorker.class, server.grpcAddress(), key, file.toString(),
                    Integer.toString(perProcess)));
        }
        for (Process p : processes) {
            assertTrue(p.waitFor(180, TimeUnit.SECONDS), "a counter process did not finish");
            assertEquals(0, p.exitValue(), ChildJvm.output(p));
        }
        assertEquals(4 * perProcess, Integer.parseInt(Files.readString(file).trim()));
        Files.delete(file);
    }
}
