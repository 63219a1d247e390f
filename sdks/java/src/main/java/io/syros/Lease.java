package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeObject;
import io.syros.internal.NativeResult;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A held lock. The client core (in Rust, not on any Java thread) renews it at about a third of
 * its TTL, so a paused or busy Java thread does not lose it; {@link #onLost} and {@link #isLost}
 * tell the moment it can no longer be guaranteed. {@link #close()} releases it (try-with-resources).
 */
public final class Lease extends NativeObject implements AutoCloseable {
    private final LeaseInfo info;
    private final List<Runnable> lostCallbacks = new CopyOnWriteArrayList<>();
    private boolean watching;

    Lease(NativeResult result) {
        super(result.takeHandle());
        this.info = LeaseInfo.from(result.map());
    }

    /** The fencing token: strictly increasing per key; pass it to the protected resource. */
    public long fencingToken() {
        return info.fencingToken();
    }

    /** The key. */
    public String key() {
        return info.key();
    }

    /** The lease as granted, or as last renewed. */
    public LeaseInfo info() {
        return LeaseInfo.from(call("info").map());
    }

    /** Whether it was lost (stop the protected work). */
    public boolean isLost() {
        return Json.getBool(call("state").map(), "lost");
    }

    /** Whether it is still ours: neither released nor lost. */
    public boolean isHeld() {
        return Json.getBool(call("state").map(), "held");
    }

    /** Extend it now (the core renews it by itself anyway). */
    public LeaseInfo renew() {
        return LeaseInfo.from(call("renew").map());
    }

    /** Release it; releasing again does nothing. */
    public void release() {
        call("release");
    }

    /** Release it without blocking. */
    public CompletableFuture<Void> releaseAsync() {
        return io.syros.internal.NativeBridge.map(callAsync("release", null, null), r -> null);
    }

    /**
     * Run {@code callback} (on a Syros completion thread) when the lease is lost; at once if it
     * already is. Not run when it is released.
     */
    public void onLost(Runnable callback) {
        lostCallbacks.add(callback);
        synchronized (this) {
            if (watching) return;
            watching = true;
        }
        // Pulled, not pushed: one wait on the lease's end, completed from Rust.
        callAsync("wait_end", "{}", null).thenAccept(result -> {
            if ("lost".equals(result.value())) {
                for (Runnable each : lostCallbacks) each.run();
            }
        });
    }

    /**
     * Wait until the lease ends, at most {@code timeout}: {@code "lost"}, {@code "released"} or
     * {@code "timed_out"}.
     */
    public String awaitEnd(Duration timeout) {
        return (String) call("wait_end", Json.obj().put("timeout_ms", timeout.toMillis()).toString(), null).value();
    }

    /** Releases it. */
    @Override
    public void close() {
        release();
    }

    @Override
    public String toString() {
        return "Lease[" + info.key() + ", fencing token " + info.fencingToken() + "]";
    }
}
