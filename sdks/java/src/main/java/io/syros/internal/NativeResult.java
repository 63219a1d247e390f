package io.syros.internal;

/**
 * What one native operation hands back: a new object's handle (0: none), its JSON record and its
 * bytes (each may be absent). Internal: built by the JNI library.
 */
public final class NativeResult {
    /** The new native object's handle, or 0; owned by whoever wraps it in a {@link NativeObject}. */
    public volatile long handle;
    /** The JSON record, or null. */
    public final String json;
    /** Bytes (cache values), or null. */
    public final byte[] bytes;

    /** Made by the JNI library. */
    public NativeResult(long handle, String json, byte[] bytes) {
        this.handle = handle;
        this.json = json;
        this.bytes = bytes;
    }

    /** The JSON record parsed ({@link Json}); null when absent. */
    public Object value() {
        return json == null ? null : Json.parse(json);
    }

    /** The JSON record as an object; null when absent or JSON null. */
    @SuppressWarnings("unchecked")
    public java.util.Map<String, Object> map() {
        Object value = value();
        return value instanceof java.util.Map ? (java.util.Map<String, Object>) value : null;
    }

    /** Hand the handle over (it is then the caller's to free). */
    public synchronized long takeHandle() {
        long taken = handle;
        handle = 0;
        return taken;
    }
}
