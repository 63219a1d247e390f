package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeResult;
import java.util.Optional;
import java.util.function.Supplier;

/** The tagged cache: {@code client.cache()}. Values are bytes. */
public final class Cache {
    private final SyrosClient client;

    Cache(SyrosClient client) {
        this.client = client;
    }

    private static String args(String key, CacheOptions options) {
        return Json.obj()
                .put("key", key)
                .put("ttl_ms", options.ttl() == null ? null : options.ttl().toMillis())
                .put("tags", options.tags())
                .toString();
    }

    /** The value under {@code key}, if any. */
    public Optional<byte[]> get(String key) {
        NativeResult result = client.op("cache_get", Json.obj().put("key", key).toString(), null);
        return Optional.ofNullable(result.bytes);
    }

    /** Store {@code value} under {@code key}, without expiry or tags. */
    public void set(String key, byte[] value) {
        set(key, value, CacheOptions.NONE);
    }

    /** Store {@code value} under {@code key}; returns its expiry (ms since the epoch), if any. */
    public Optional<Long> set(String key, byte[] value, CacheOptions options) {
        NativeResult result = client.op("cache_set", args(key, options), value);
        Object expiry = result.map().get("expires_at_ms");
        return expiry instanceof Number n ? Optional.of(n.longValue()) : Optional.empty();
    }

    /** Remove {@code key}; whether it existed. */
    public boolean delete(String key) {
        return Boolean.TRUE.equals(client.op("cache_delete", Json.obj().put("key", key).toString(), null).value());
    }

    /** Remove every key tagged {@code tag} (atomically); how many. */
    public long invalidateTag(String tag) {
        Object removed = client.op("cache_invalidate_tag", Json.obj().put("tag", tag).toString(), null).value();
        return removed instanceof Number n ? n.longValue() : 0;
    }

    /**
     * The value under {@code key}, or {@code compute}'s, stored with {@code options}. Callers for
     * the same key in this process share one lookup and one computation (single-flight): one
     * runs {@code compute} on its own thread, the others get its value. If {@code compute}
     * throws, every waiting caller gets a {@link CallbackFailedException} and nothing is stored.
     */
    public byte[] getOrCompute(String key, Supplier<byte[]> compute, CacheOptions options) {
        NativeResult lookup = client.op("cache_begin", args(key, options), null);
        if (lookup.handle == 0) return lookup.bytes;
        ComputeTicket ticket = new ComputeTicket(lookup);
        byte[] value;
        try {
            value = compute.get();
            if (value == null) throw new IllegalArgumentException("the computed value must not be null");
        } catch (RuntimeException | Error e) {
            ticket.fail(e.toString());
            throw e;
        }
        return ticket.complete(value);
    }

    /** {@link #getOrCompute(String, Supplier, CacheOptions)} without expiry or tags. */
    public byte[] getOrCompute(String key, Supplier<byte[]> compute) {
        return getOrCompute(key, compute, CacheOptions.NONE);
    }

    /** The duty to compute one missing value (internal to getOrCompute). */
    private static final class ComputeTicket extends io.syros.internal.NativeObject {
        ComputeTicket(NativeResult result) {
            super(result.takeHandle());
        }

        byte[] complete(byte[] value) {
            return call("complete", null, value).bytes;
        }

        void fail(String message) {
            call("fail", Json.obj().put("message", message).toString(), null);
        }
    }
}
