package io.syros.bench;

import io.syros.ClientOptions;
import io.syros.Lease;
import io.syros.LockOptions;
import io.syros.SyrosClient;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import org.redisson.Redisson;
import org.redisson.api.RLock;
import org.redisson.api.RedissonClient;
import org.redisson.config.Config;

/**
 * Lock cycles/s (acquire with a 10 s TTL + release), 32 threads on distinct keys, for the Syros
 * Java SDK (against a `syros serve` on Redis) and Redisson on the same Redis, in the same run;
 * prints both and the ratio. A benchmark, not a test: no threshold.
 *
 * <pre>java -cp ... io.syros.bench.LockBench &lt;syros grpc address&gt; &lt;redis url&gt; [threads] [seconds]</pre>
 */
public final class LockBench {
    interface Cycle {
        void run(String key) throws Exception;
    }

    static double measure(String name, int threads, int seconds, Cycle cycle) throws Exception {
        LongAdder cycles = new LongAdder();
        AtomicBoolean counting = new AtomicBoolean(false);
        AtomicBoolean stop = new AtomicBoolean(false);
        CountDownLatch done = new CountDownLatch(threads);
        List<Throwable> errors = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            String key = "bench:" + name + ":" + t + ":" + System.nanoTime();
            Thread thread = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        cycle.run(key);
                        if (counting.get()) cycles.increment();
                    }
                } catch (Throwable e) {
                    synchronized (errors) {
                        errors.add(e);
                    }
                } finally {
                    done.countDown();
                }
            });
            thread.setDaemon(true);
            thread.start();
        }
        Thread.sleep(1000); // warm-up
        long start = System.nanoTime();
        counting.set(true);
        Thread.sleep(seconds * 1000L);
        counting.set(false);
        long elapsed = System.nanoTime() - start;
        stop.set(true);
        done.await(30, TimeUnit.SECONDS);
        if (!errors.isEmpty()) throw new RuntimeException(name + " failed", errors.get(0));
        double rate = cycles.sum() / (elapsed / 1e9);
        System.out.printf("%-8s %2d threads: %8.0f cycles/s%n", name, threads, rate);
        return rate;
    }

    public static void main(String[] args) throws Exception {
        String syros = args[0];
        String redis = args[1];
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 32;
        int seconds = args.length > 3 ? Integer.parseInt(args[3]) : 5;

        Config config = new Config();
        config.useSingleServer().setAddress(redis).setConnectionPoolSize(64).setConnectionMinimumIdleSize(32);
        RedissonClient redisson = Redisson.create(config);
        double redissonRate = measure("redisson", threads, seconds, key -> {
            RLock lock = redisson.getLock(key);
            lock.lock(10, TimeUnit.SECONDS);
            lock.unlock();
        });
        redisson.shutdown();

        double syrosRate;
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(syros).build())) {
            LockOptions options = LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(5));
            syrosRate = measure("syros", threads, seconds, key -> {
                try (Lease lease = client.lock(key, options)) {
                    if (lease.fencingToken() <= 0) throw new IllegalStateException("no fencing token");
                }
            });
        }
        System.out.printf("java lock cycles/s, %d threads, distinct keys: syros %.0f / redisson %.0f = %.2fx%n",
                threads, syrosRate, redissonRate, syrosRate / redissonRate);
    }
}
