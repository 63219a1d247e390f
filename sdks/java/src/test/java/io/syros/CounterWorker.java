package io.syros;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** Child JVM of the 4-process counter test: increments a file counter under one lock. */
public final class CounterWorker {
    public static void main(String[] args) throws Exception {
        String address = args[0];
        String key = args[1];
        Path file = Path.of(args[2]);
        int times = Integer.parseInt(args[3]);
        long lastToken = 0;
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(address).build())) {
            for (int i = 0; i < times; i++) {
                try (Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(60)))) {
                    if (lease.fencingToken() <= lastToken) throw new AssertionError("fencing token went back");
                    lastToken = lease.fencingToken();
                    int value = Integer.parseInt(Files.readString(file).trim());
                    Thread.sleep(1);
                    Files.writeString(file, Integer.toString(value + 1));
                }
            }
        }
    }
}
