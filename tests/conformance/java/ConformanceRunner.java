// The Java runner of the conformance scenarios (tests/conformance/scenarios) over the public
// io.syros API. A fresh `syros serve` per scenario through the Java test launcher
// (sdks/java/src/test/java/io/syros/SyrosServer.java); prints `PASS name` / `FAIL name: reason`
// and `N passed, N failed`; exits 1 when any failed or none ran.
//
//   java -cp sdks/java/target/classes:sdks/java/target/test-classes \
//        tests/conformance/java/ConformanceRunner.java [scenario dir] [name filter]
//
// (scripts/java-sdk.sh runs it on each backend; SYROS_BIN names the server binary.)

import io.syros.*;
import io.syros.internal.Json;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;

public class ConformanceRunner {
    static final class StepError extends RuntimeException {
        StepError(String message) {
            super(message);
        }
    }

    static void ensure(boolean condition, String message) {
        if (!condition) throw new StepError(message);
    }

    static String text(Map<String, Object> step, String name) {
        Object value = step.get(name);
        ensure(value instanceof String, "step " + Json.write(step) + " needs a string `" + name + "`");
        return (String) value;
    }

    static long num(Map<String, Object> step, String name, long fallback) {
        return step.get(name) instanceof Number n ? n.longValue() : fallback;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Object value) {
        return value instanceof Map ? (Map<String, Object>) value : new LinkedHashMap<>();
    }

    /** Run {@code call}; check it against expect.error (or success when absent); null when it failed as expected. */
    static <T> Optional<T> checkError(Map<String, Object> step, Callable<T> call) throws Exception {
        Object wanted = obj(step.get("expect")).get("error");
        try {
            T value = call.call();
            ensure(wanted == null, "expected error " + wanted + ", the call succeeded");
            return Optional.ofNullable(value);
        } catch (SyrosException e) {
            if (wanted == null) throw new StepError("unexpected error " + e.code() + ": " + e.getMessage());
            ensure(e.code().equals(wanted), "expected error " + wanted + ", got " + e.code() + ": " + e.getMessage());
            return null;
        }
    }

    final SyrosServer server;
    final String id;
    SyrosClient client;
    final Map<String, Lease> leases = new HashMap<>();
    final Map<String, CompletableFuture<Lease>> pending = new HashMap<>();
    final Map<String, Subscription> subscriptions = new HashMap<>();
    final Map<String, Map<String, Object>> saved = new HashMap<>();

    ConformanceRunner(SyrosServer server, String name) {
        this.server = server;
        this.id = name + "-" + ProcessHandle.current().pid();
    }

    SyrosClient client() {
        if (client == null) {
            client = SyrosClient.connect(ClientOptions.builder().address(server.grpcAddress())
                    .connectTimeout(Duration.ofSeconds(2)).callTimeout(Duration.ofSeconds(10)).build());
        }
        return client;
    }

    Object resolve(Object value) {
        if (value instanceof String s && s.startsWith("$")) {
            String[] parts = s.substring(1).split("\\.", 2);
            ensure(parts.length == 2, "reference " + s + " needs a field");
            ensure(saved.containsKey(parts[0]), "nothing saved as " + parts[0]);
            ensure(saved.get(parts[0]).containsKey(parts[1]), parts[0] + " has no field " + parts[1]);
            return saved.get(parts[0]).get(parts[1]);
        }
        if (value instanceof String s) return s.replace("{id}", id);
        if (value instanceof List<?> list) {
            List<Object> out = new ArrayList<>();
            for (Object v : list) out.add(resolve(v));
            return out;
        }
        if (value instanceof Map<?, ?> map) {
            Map<String, Object> out = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : map.entrySet()) out.put(String.valueOf(e.getKey()), resolve(e.getValue()));
            return out;
        }
        return value;
    }

    void keepLease(Object name, Lease lease) {
        if (!(name instanceof String n)) return;
        LeaseInfo info = lease.info();
        saved.put(n, Map.of("lease_id", info.leaseId(), "fencing_token", info.fencingToken(), "key", info.key()));
        leases.put(n, lease);
    }

    Lease lease(Map<String, Object> step) {
        String name = text(step, "lease");
        ensure(leases.containsKey(name), "no lease saved as " + name);
        return leases.get(name);
    }

    Subscription subscription(Map<String, Object> step) {
        String name = text(step, "subscription");
        ensure(subscriptions.containsKey(name), "no subscription saved as " + name);
        return subscriptions.get(name);
    }

    static List<Long> longs(Object value) {
        List<Long> out = new ArrayList<>();
        if (value instanceof List<?> list) for (Object v : list) out.add(((Number) v).longValue());
        return out;
    }

    void scenario(Map<String, Object> scenario) throws Exception {
        List<Map<String, Object>> steps = Json.getObjects(scenario, "steps");
        ensure(!steps.isEmpty(), "a scenario needs `steps`");
        for (int i = 0; i < steps.size(); i++) {
            Map<String, Object> step = obj(resolve(steps.get(i)));
            try {
                step(text(step, "op"), step);
            } catch (StepError | SyrosException e) {
                throw new StepError("step " + (i + 1) + " (" + step.get("op") + "): " + e.getMessage());
            }
        }
    }

    void finish() {
        for (CompletableFuture<Lease> f : pending.values()) f.cancel(true);
        for (Subscription s : subscriptions.values()) s.close();
        if (client != null) client.close();
    }

    void step(String op, Map<String, Object> step) throws Exception {
        Map<String, Object> expect = obj(step.get("expect"));
        LockOptions lockOptions = LockOptions.ttl(Duration.ofMillis(num(step, "ttl_ms", 5000)))
                .waitFor(Duration.ofMillis(num(step, "wait_ms", 0)));
        switch (op) {
            case "lock" -> {
                Optional<Lease> lease = checkError(step, () -> client().lock(text(step, "key"), lockOptions));
                if (lease != null) keepLease(step.get("save"), lease.get());
            }
            case "try_lock" -> {
                Optional<Lease> lease = client().tryLock(text(step, "key"), lockOptions);
                if (expect.get("acquired") instanceof Boolean b) ensure(lease.isPresent() == b, "expected acquired=" + b);
                lease.ifPresent(l -> keepLease(step.get("save"), l));
            }
            case "lock_async" -> pending.put(text(step, "save"), client().lockAsync(text(step, "key"), lockOptions));
            case "await_lease" -> {
                String name = text(step, "name");
                CompletableFuture<Lease> f = pending.remove(name);
                ensure(f != null, "nothing pending as " + name);
                long within = num(step, "within_ms", 5000);
                try {
                    keepLease(name, f.get(within, TimeUnit.MILLISECONDS));
                } catch (TimeoutException e) {
                    throw new StepError(name + " was not granted within " + within + " ms");
                } catch (ExecutionException e) {
                    throw new StepError(name + " failed: " + e.getCause());
                }
            }
            case "expect_pending" -> {
                String name = text(step, "name");
                Thread.sleep(num(step, "for_ms", 0));
                ensure(pending.containsKey(name), "nothing pending as " + name);
                ensure(!pending.get(name).isDone(), name + " was already granted (out of order)");
            }
            case "release" -> lease(step).release();
            case "renew" -> checkError(step, () -> lease(step).renew());
            case "lease_state" -> {
                Lease lease = lease(step);
                if (expect.get("held") instanceof Boolean b) ensure(lease.isHeld() == b, "expected held=" + b);
                if (expect.get("lost") instanceof Boolean b) ensure(lease.isLost() == b, "expected lost=" + b);
            }
            case "wait_end" -> {
                String end = lease(step).awaitEnd(Duration.ofMillis(num(step, "timeout_ms", 1000)));
                ensure(end.equals(expect.get("end")), "expected " + expect.get("end") + ", the wait ended " + end);
            }
            case "lock_status" -> {
                Optional<LeaseInfo> holder = client().lockStatus(text(step, "key"));
                if (Boolean.TRUE.equals(expect.get("free"))) ensure(holder.isEmpty(), "expected free, held by " + holder.map(LeaseInfo::leaseId).orElse(""));
                if (expect.get("lease_id") != null) ensure(holder.isPresent() && holder.get().leaseId().equals(expect.get("lease_id")),
                        "expected lease " + expect.get("lease_id") + ", holder " + holder.map(LeaseInfo::leaseId).orElse("none"));
            }
            case "force_release" -> client().forceRelease(text(step, "key"));
            case "cache_set" -> {
                Object raw = step.get("value");
                String value = raw instanceof Map<?, ?> m
                        ? String.valueOf(Objects.requireNonNullElse(m.get("repeat"), "x")).repeat(((Number) Objects.requireNonNullElse(m.get("times"), 1)).intValue())
                        : (String) raw;
                ensure(value != null, "bad cache value " + Json.write(raw));
                Duration ttl = step.get("ttl_ms") instanceof Number n ? Duration.ofMillis(n.longValue()) : null;
                CacheOptions options = new CacheOptions(ttl, Json.getStrings(step, "tags"));
                checkError(step, () -> client().cache().set(text(step, "key"), value.getBytes(), options));
            }
            case "cache_get" -> {
                Optional<byte[]> value = client().cache().get(text(step, "key"));
                if (Boolean.TRUE.equals(expect.get("missing"))) ensure(value.isEmpty(), "expected no value");
                if (expect.get("value") instanceof String want) {
                    String got = value.map(String::new).orElse(null);
                    ensure(want.equals(got), "expected " + want + ", got " + got);
                }
            }
            case "cache_invalidate_tag" -> {
                long removed = client().cache().invalidateTag(text(step, "tag"));
                if (expect.get("removed") instanceof Number n) ensure(removed == n.longValue(), "removed " + removed + ", expected " + n);
            }
            case "append" -> {
                List<EventData> events = new ArrayList<>();
                for (Map<String, Object> e : Json.getObjects(step, "events")) {
                    events.add(EventData.of(Objects.requireNonNullElse((String) e.get("type"), "Event"), Json.write(e.get("data"))));
                }
                Object expected = step.getOrDefault("expected", "any");
                ExpectedVersion version = expected instanceof Number n ? ExpectedVersion.exact(n.longValue())
                        : "no_stream".equals(expected) ? ExpectedVersion.NO_STREAM : ExpectedVersion.ANY;
                Optional<AppendResult> result = checkError(step, () -> client().events().append(text(step, "stream"), version, events));
                if (result != null && expect.get("last_version") instanceof Number n) {
                    ensure(result.get().lastVersion() == n.longValue(), "last version " + result.get().lastVersion() + ", expected " + n);
                }
            }
            case "read" -> {
                ReadResult read = client().events().read(text(step, "stream"), 0, 0);
                List<Long> versions = read.events().stream().map(RecordedEvent::version).toList();
                List<String> types = read.events().stream().map(RecordedEvent::type).toList();
                if (expect.containsKey("versions")) ensure(versions.equals(longs(expect.get("versions"))), "versions " + versions + ", expected " + expect.get("versions"));
                if (expect.containsKey("types")) ensure(types.equals(expect.get("types")), "types " + types + ", expected " + expect.get("types"));
            }
            case "subscribe" -> {
                Object from = step.getOrDefault("from", "start");
                SubscribeFrom start = from instanceof Number n ? SubscribeFrom.at(n.longValue())
                        : "end".equals(from) ? SubscribeFrom.END : SubscribeFrom.START;
                subscriptions.put(text(step, "save"), client().events().subscribe(text(step, "stream"), start));
            }
            case "next_events" -> {
                Subscription sub = subscription(step);
                long deadline = System.currentTimeMillis() + num(step, "timeout_ms", 5000);
                List<Long> versions = new ArrayList<>();
                while (versions.size() < num(step, "count", 1)) {
                    Optional<RecordedEvent> event = sub.next(Duration.ofMillis(Math.max(1, deadline - System.currentTimeMillis())));
                    ensure(!sub.isEnded(), "the subscription ended");
                    ensure(event.isPresent(), "only got versions " + versions + " in time");
                    versions.add(event.get().version());
                }
                if (expect.containsKey("versions")) ensure(versions.equals(longs(expect.get("versions"))), "versions " + versions + ", expected " + expect.get("versions"));
            }
            case "expect_no_event" -> {
                Optional<RecordedEvent> event = subscription(step).next(Duration.ofMillis(num(step, "within_ms", 500)));
                ensure(event.isEmpty(), "expected no event, got " + event.map(RecordedEvent::version).orElse(-1L));
            }
            case "close" -> subscription(step).close();
            case "start_saga" -> {
                SagaDefinition.Builder saga = SagaDefinition.builder(text(step, "name"))
                        .input(Json.write(step.getOrDefault("input", Map.of())));
                for (Map<String, Object> s : Json.getObjects(step, "steps")) {
                    Duration timeout = s.get("timeout_ms") instanceof Number n ? Duration.ofMillis(n.longValue()) : null;
                    saga.step(new StepDefinition((String) s.get("name"), (String) s.get("service"), (String) s.get("action"),
                            (String) s.get("compensation"), timeout, null));
                }
                SagaInfo started = client().sagas().start(saga.build());
                if (step.get("save") instanceof String name) saved.put(name, Map.of("saga_id", started.sagaId()));
            }
            case "run_worker" -> runWorker(step);
            case "compare" -> {
                ensure(step.get("left") instanceof Number && step.get("right") instanceof Number, "compare needs numbers");
                long left = num(step, "left", 0), right = num(step, "right", 0);
                String cmp = (String) step.getOrDefault("cmp", "==");
                Boolean holds = switch (cmp) {
                    case ">" -> left > right;
                    case ">=" -> left >= right;
                    case "==" -> left == right;
                    case "!=" -> left != right;
                    default -> null;
                };
                ensure(holds != null, "unknown comparison " + cmp);
                ensure(holds, "expected " + left + " " + cmp + " " + right);
            }
            case "sleep" -> Thread.sleep(num(step, "ms", 0));
            case "restart_server", "start_server" -> server.restart();
            case "stop_server" -> server.kill();
            default -> throw new StepError("unknown operation " + op);
        }
    }

    /** A worker with the scripted handlers (run on Java threads) until the saga is final. */
    void runWorker(Map<String, Object> step) throws Exception {
        String sagaId = text(step, "saga");
        List<String> calls = new CopyOnWriteArrayList<>();
        Worker.Builder builder = client().worker(text(step, "service")).maxConcurrent(4);
        for (Map.Entry<String, Object> e : obj(step.get("script")).entrySet()) {
            String handler = e.getKey();
            Map<String, Object> behaviour = obj(e.getValue());
            builder.action(handler, task -> {
                calls.add(handler);
                if (behaviour.containsKey("complete")) return Json.write(behaviour.get("complete"));
                Map<String, Object> failure = obj(behaviour.get("fail"));
                throw new TaskFailedException(Objects.requireNonNullElse((String) failure.get("error_type"), "failed"),
                        Objects.requireNonNullElse((String) failure.get("message"), ""), Boolean.TRUE.equals(failure.get("non_retryable")));
            });
        }
        SagaInfo saga;
        try (Worker worker = builder.start()) {
            try {
                saga = client().sagas().await(sagaId, Duration.ofMillis(num(step, "timeout_ms", 20000)));
            } catch (SyrosException e) {
                throw new StepError("the saga did not finish in time (" + e.code() + "); calls so far " + calls);
            }
        }
        Map<String, Object> expect = obj(step.get("expect"));
        if (expect.containsKey("calls")) ensure(calls.equals(expect.get("calls")), "handlers ran " + calls + ", expected " + expect.get("calls"));
        if (expect.get("state") instanceof String state) ensure(saga.state().wireName().equals(state), "saga ended " + saga.state().wireName() + ", expected " + state);
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "tests/conformance/scenarios");
        String filter = args.length > 1 ? args[1] : null;
        String backend = System.getenv().getOrDefault("SYROS_TEST_BACKEND", "embedded");
        List<Path> files;
        try (var stream = Files.list(dir)) {
            files = stream.filter(p -> p.toString().endsWith(".json")).sorted().toList();
        }
        int passed = 0, failed = 0;
        for (Path file : files) {
            Map<String, Object> scenario;
            try {
                scenario = Json.parseObject(Files.readString(file));
            } catch (RuntimeException e) {
                System.out.println("FAIL " + file.getFileName() + ": not valid JSON: " + e.getMessage());
                failed++;
                continue;
            }
            String name = Objects.requireNonNullElse((String) scenario.get("name"), "unnamed");
            if (filter != null && !name.contains(filter)) continue;
            long started = System.nanoTime();
            ConformanceRunner run = null;
            try (SyrosServer server = SyrosServer.start()) {
                run = new ConformanceRunner(server, name);
                try {
                    run.scenario(scenario);
                } finally {
                    run.finish();
                }
                passed++;
                System.out.printf("PASS %s (%.1fs, %s)%n", name, (System.nanoTime() - started) / 1e9, backend);
            } catch (Exception e) {
                failed++;
                System.out.println("FAIL " + name + " (" + backend + "): " + e.getMessage());
            }
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed > 0 || passed == 0 ? 1 : 0);
    }
}
