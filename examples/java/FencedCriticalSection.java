// A fenced critical section: 8 threads increment a value in a "storage service" under one lock,
// passing the lease's fencing token with every write. The storage rejects a write whose token is
// older than one it has already seen, so a holder that was paused past its lease (here: its lease
// is force-released while it "sleeps") cannot overwrite newer data. Checks the outcome.
//
//   java -cp syros-client-0.1.0.jar examples/java/FencedCriticalSection.java 127.0.0.1:9090

import io.syros.*;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

public class FencedCriticalSection {
    /** The protected resource: accepts a write only with the highest fencing token seen so far. */
    static final class FencedStorage {
        private long highestToken;
        private long value;

        synchronized long read() {
            return value;
        }

        synchronized void write(long newValue, long fencingToken) {
            if (fencingToken < highestToken) {
                throw new IllegalStateException("stale fencing token " + fencingToken + " < " + highestToken);
            }
            highestToken = fencingToken;
            value = newValue;
        }
    }

    public static void main(String[] args) throws Exception {
        String address = args.length > 0 ? args[0] : "127.0.0.1:9090";
        String key = "inventory:sku-42:" + System.nanoTime();
        FencedStorage storage = new FencedStorage();
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(address).build())) {
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                Thread thread = new Thread(() -> {
                    for (int i = 0; i < 10; i++) {
                        try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(30)))) {
                            storage.write(storage.read() + 1, lease.fencingToken());
                        }
                    }
                });
                threads.add(thread);
                thread.start();
            }
            for (Thread thread : threads) thread.join();
            check(storage.read() == 80, "80 increments, got " + storage.read());

            // A holder that stalls: an operator force-releases its lease, someone else writes,
            // then the stalled holder wakes up and tries to write with its old token.
            Lease stalled = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)));
            client.forceRelease(key);
            try (Lease fresh = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(5)))) {
                storage.write(storage.read() + 1, fresh.fencingToken());
            }
            boolean rejected = false;
            try {
                storage.write(-1, stalled.fencingToken());
            } catch (IllegalStateException e) {
                rejected = true;
                System.out.println("stalled holder rejected: " + e.getMessage());
            }
            check(rejected, "the stale write must be rejected");
            check(storage.read() == 81, "the value survived the stale write");
        }
        System.out.println("fenced critical section example: ok (value " + storage.read() + ")");
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            System.err.println("FAILED: " + what);
            System.exit(1);
        }
    }
}
