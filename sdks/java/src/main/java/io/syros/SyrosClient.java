package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeBridge;
import io.syros.internal.NativeObject;
import io.syros.internal.NativeResult;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/**
 * A connection to Syros: locks with fencing tokens, the tagged {@link #cache()}, the event store
 * ({@link #events()}) and sagas ({@link #sagas()}, {@link #worker(String)}).
 *
 * <pre>{@code
 * try (SyrosClient client = SyrosClient.connect(ClientOptions.builder().address("127.0.0.1:9090").build());
 *      Lease lease = client.lock("orders:42", LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(5)))) {
 *     storage.write(order, lease.fencingToken());
 * }
 * }</pre>
 *
 * Every call runs in the Syros client core (Rust); blocking methods block the calling thread,
 * {@code ...Async} methods return a {@link CompletableFuture} completed on a Syros completion
 * thread (cancelling it aborts the call). Thread-safe. Errors are {@link SyrosException}s, one
 * subclass per code.
 */
public final class SyrosClient extends NativeObject implements AutoCloseable {
    private final Cache cache = new Cache(this);
    private final Events events = new Events(this);
    private final Sagas sagas = new Sagas(this);

    private SyrosClient(NativeResult result) {
        super(result.takeHandle());
    }

    /** Connect (blocking until connected; {@link UnavailableException} if the server cannot be reached). */
    public static SyrosClient connect(ClientOptions options) {
        return new SyrosClient(NativeBridge.call(0, "connect", options.toJson(), null));
    }

    /** Connect without blocking. */
    public static CompletableFuture<SyrosClient> connectAsync(ClientOptions options) {
        return NativeBridge.map(NativeBridge.async(0, "connect", options.toJson(), null), SyrosClient::new);
    }

    /** The stable codes of every error kind, from the client core (for tools and tests). */
    public static List<String> errorCodes() {
        return Json.getStrings(Map.of("codes", NativeBridge.call(0, "error_codes", null, null).value()), "codes");
    }

    /**
     * Stop the Syros runtime of this process (background renewals, subscriptions and workers
     * end), waiting up to {@code timeoutMs}. Not needed for the JVM to exit; the next call starts a
     * new runtime.
     */
    public static void shutdownRuntime(long timeoutMs) {
        NativeBridge.call(0, "shutdown", Long.toString(timeoutMs), null);
    }

    /** Run one operation of this client (for the API classes of this package). */
    NativeResult op(String op, String args, byte[] bytes) {
        return call(op, args, bytes);
    }

    /** Start one operation of this client. */
    CompletableFuture<NativeResult> opAsync(String op, String args) {
        return callAsync(op, args, null);
    }

    // --- locks ----------------------------------------------------------------------------------

    /**
     * Acquire {@code key}, waiting up to {@code options.waitFor()} while someone else holds it;
     * {@link LockTimeoutException} (details name the holder) when it is still held then.
     */
    public Lease lock(String key, LockOptions options) {
        return new Lease(call("lock", options.toJson(key), null));
    }

    /** {@link #lock} without blocking; cancelling the future stops waiting (nothing stays held). */
    public CompletableFuture<Lease> lockAsync(String key, LockOptions options) {
        return NativeBridge.map(callAsync("lock", options.toJson(key), null), Lease::new);
    }

    /** Try once: empty when someone else holds {@code key}. */
    public Optional<Lease> tryLock(String key, LockOptions options) {
        NativeResult result = call("try_lock", options.toJson(key), null);
        return result.handle == 0 ? Optional.empty() : Optional.of(new Lease(result));
    }

    /** The current holder of {@code key}, if any. */
    public Optional<LeaseInfo> lockStatus(String key) {
        return Optional.ofNullable(LeaseInfo.from(call("lock_status", Json.obj().put("key", key).toString(), null).map()));
    }

    /** Held locks whose key starts with {@code prefix} ({@code limit} 0: the server's default). */
    public List<LeaseInfo> listLocks(String prefix, int limit) {
        Object value = call("list_locks", Json.obj().put("prefix", prefix).put("limit", limit).toString(), null).value();
        List<LeaseInfo> out = new ArrayList<>();
        if (value instanceof List<?> list) {
            for (Object each : list) {
                @SuppressWarnings("unchecked")
                Map<String, Object> map = (Map<String, Object>) each;
                out.add(LeaseInfo.from(map));
            }
        }
        return out;
    }

    /** Administrative: drop whatever lease holds {@code key}; the lease dropped, if any. */
    public Optional<LeaseInfo> forceRelease(String key) {
        return Optional.ofNullable(LeaseInfo.from(call("force_release", Json.obj().put("key", key).toString(), null).map()));
    }

    // --- the rest -------------------------------------------------------------------------------

    /** The tagged cache. */
    public Cache cache() {
        return cache;
    }

    /** The event store. */
    public Events events() {
        return events;
    }

    /** Sagas. */
    public Sagas sagas() {
        return sagas;
    }

    /** A step runner for {@code service}: add handlers, then {@link Worker.Builder#start()}. */
    public Worker.Builder worker(String service) {
        return new Worker.Builder(this, service);
    }

    /** Replace the bearer token sent with every later call (null: none). */
    public void setAuthToken(String token) {
        call("set_auth_token", Json.obj().put("token", token).toString(), null);
    }

    /** The default lock owner. */
    public String owner() {
        return (String) call("owner", null, null).value();
    }

    /** Ask the server whether it is serving ({@link UnavailableException} if not). */
    public void checkHealth() {
        call("check_health", null, null);
    }

    /**
     * Refuse every later call (idempotent). Leases, subscriptions and workers already handed out
     * keep working until they are released, closed or stopped.
     */
    @Override
    public void close() {
        call("close", null, null);
    }
}
