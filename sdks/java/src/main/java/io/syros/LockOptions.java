package io.syros;

import java.time.Duration;

/**
 * How to acquire a lock: {@code LockOptions.ttl(Duration.ofSeconds(10)).waitFor(Duration.ofSeconds(5))}.
 * Immutable; each method returns a copy.
 */
public final class LockOptions {
    private final Duration ttl;
    private final Duration waitFor;
    private final String owner;
    private final boolean autoRenew;

    private LockOptions(Duration ttl, Duration waitFor, String owner, boolean autoRenew) {
        // Ranges are checked by the client core and the server (InvalidArgumentException), the
        // same for every language.
        this.ttl = ttl;
        this.waitFor = waitFor;
        this.owner = owner;
        this.autoRenew = autoRenew;
    }

    /** A lease of this time to live, renewed in the background, not waiting if held. */
    public static LockOptions ttl(Duration ttl) {
        return new LockOptions(ttl, Duration.ZERO, null, true);
    }

    /** Wait up to {@code wait} while someone else holds the lock (then {@link LockTimeoutException}). */
    public LockOptions waitFor(Duration wait) {
        return new LockOptions(ttl, wait, owner, autoRenew);
    }

    /** Hold it under this owner (default: the client's). */
    public LockOptions owner(String owner) {
        return new LockOptions(ttl, waitFor, owner, autoRenew);
    }

    /** Whether the client core renews the lease at about a third of its TTL (default true). */
    public LockOptions autoRenew(boolean autoRenew) {
        return new LockOptions(ttl, waitFor, owner, autoRenew);
    }

    /** The TTL. */
    public Duration ttl() {
        return ttl;
    }

    /** The wait. */
    public Duration waitFor() {
        return waitFor;
    }

    String toJson(String key) {
        return io.syros.internal.Json.obj()
                .put("key", key)
                .put("ttl_ms", ttl.toMillis())
                .put("wait_ms", waitFor.toMillis())
                .put("owner", owner)
                .put("auto_renew", autoRenew)
                .toString();
    }
}
