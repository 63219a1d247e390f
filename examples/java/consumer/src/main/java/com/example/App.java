package com.example;

import io.syros.ClientOptions;
import io.syros.Lease;
import io.syros.LockOptions;
import io.syros.LockTimeoutException;
import io.syros.SyrosClient;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

/** Uses io.syros:syros-client as a dependency only (the native library comes from its jar). */
public final class App {
    public static void main(String[] args) {
        String key = "consumer-" + ProcessHandle.current().pid();
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(args[0]).build());
             Lease lease = client.lock(key, LockOptions.ttl(Duration.ofSeconds(5)))) {
            try {
                client.lock(key, LockOptions.ttl(Duration.ofSeconds(5)).waitFor(Duration.ofMillis(100)));
                throw new AssertionError("a held lock was granted");
            } catch (LockTimeoutException expected) {
                // as documented
            }
            client.cache().set("consumer", "ok".getBytes(StandardCharsets.UTF_8));
            String value = new String(client.cache().get("consumer").orElseThrow(), StandardCharsets.UTF_8);
            if (!value.equals("ok")) throw new AssertionError("cache returned " + value);
            System.out.println("consumer project ran: fencing token " + lease.fencingToken());
        }
    }
}
