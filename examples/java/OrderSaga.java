// The order saga with Java handlers: reserve inventory, charge the card, ship; a declined card
// compensates what completed, in reverse. Checks both outcomes and exits non-zero if wrong.
//
//   java -cp syros-client-0.1.0.jar examples/java/OrderSaga.java 127.0.0.1:9090

import io.syros.*;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

public class OrderSaga {
    public static void main(String[] args) throws Exception {
        String address = args.length > 0 ? args[0] : "127.0.0.1:9090";
        String run = Long.toString(System.nanoTime());
        List<String> log = new CopyOnWriteArrayList<>();
        try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address(address).build());
             Worker inventory = client.worker("inventory_service-" + run)
                     .action("reserve", task -> { log.add("reserve " + task.sagaId()); return "{\"reservation\":\"r-1\"}"; })
                     .compensation("release_inventory", task -> { log.add("release " + task.sagaId()); return null; })
                     .maxConcurrent(16).start();
             Worker payments = client.worker("payment_service-" + run)
                     .action("charge", task -> {
                         // The idempotency key is the same for every retry of this step: a real
                         // payment provider would be called with it so the card is charged once.
                         if (task.inputJson().contains("\"declined\":true")) {
                             throw new TaskFailedException("card_declined", "the card was declined", true);
                         }
                         log.add("charge " + task.sagaId() + " key " + task.idempotencyKey());
                         return "{\"charged\":42}";
                     })
                     .compensation("refund", task -> { log.add("refund " + task.sagaId()); return null; })
                     .start();
             Worker shipping = client.worker("shipping_service-" + run)
                     .action("ship", task -> { log.add("ship " + task.sagaId()); return "{\"tracking\":\"T-9\"}"; })
                     .start()) {
            SagaInfo ok = place(client, run, "order-1", false);
            SagaInfo declined = place(client, run, "order-2", true);
            System.out.println("order-1: " + ok.state() + ", order-2: " + declined.state());
            log.forEach(line -> System.out.println("  " + line));
            check(ok.state() == SagaState.COMPLETED, "order-1 should complete");
            check(declined.state() == SagaState.COMPENSATED, "order-2 should be compensated");
            check(log.contains("release " + declined.sagaId()), "order-2's reservation should be released");
            check(!log.contains("release " + ok.sagaId()), "order-1 keeps its reservation");
        }
        System.out.println("order saga example: ok");
    }

    static SagaInfo place(SyrosClient client, String run, String order, boolean declined) {
        SagaInfo saga = client.sagas().start(SagaDefinition.builder("order")
                .step("reserve", "inventory_service-" + run, "reserve", "release_inventory")
                .step("charge", "payment_service-" + run, "charge", "refund")
                .step("ship", "shipping_service-" + run, "ship", null)
                .input("{\"order\":\"" + order + "\",\"declined\":" + declined + "}")
                .idempotencyKey(order + "-" + run)
                .build());
        return client.sagas().await(saga.sagaId(), Duration.ofSeconds(60));
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            System.err.println("FAILED: " + what);
            System.exit(1);
        }
    }
}
