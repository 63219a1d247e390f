package io.syros;

import java.time.Duration;

/** Child JVM: uses every kind of object (async too), closes, and returns from main. */
public final class ExitMain {
    public static void main(String[] args) throws Exception {
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(args[0]).build())) {
            Lease lease = client.lockAsync("exit-" + ProcessHandle.current().pid(), LockOptions.ttl(Duration.ofSeconds(5))).get();
            lease.onLost(() -> System.out.println("lost"));
            client.events().append("exit-stream", ExpectedVersion.ANY, EventData.of("e", "{}"));
            try (Subscription sub = client.events().subscribe("exit-stream", SubscribeFrom.START)) {
                sub.next(Duration.ofSeconds(5)).orElseThrow();
            }
            try (Worker worker = client.worker("exit-svc").action("a", task -> "{}").start()) {
                worker.workerId();
            }
            client.cache().getOrCompute("exit-key", () -> new byte[] {1});
            lease.release();
        }
        System.out.println("exit-main done");
    }
}
