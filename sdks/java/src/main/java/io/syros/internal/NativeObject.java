package io.syros.internal;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.concurrent.CompletableFuture;

/**
 * A Java object over one native object. The native object is freed by a {@link Cleaner} once the
 * Java object is unreachable, never earlier, so no call can reach a freed handle; {@code close()}
 * methods of the public classes end the object's work, not its memory. Internal.
 */
public abstract class NativeObject {
    private static final Cleaner CLEANER = Cleaner.create();

    private final long handle;

    protected NativeObject(long handle) {
        if (handle == 0) throw new IllegalArgumentException("no native object");
        this.handle = handle;
        CLEANER.register(this, () -> NativeBridge.free(handle));
    }

    /** Run {@code op} on this object and block until done. */
    protected final NativeResult call(String op, String args, byte[] bytes) {
        try {
            return NativeBridge.call(handle, op, args, bytes);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** {@link #call} without arguments. */
    protected final NativeResult call(String op) {
        return call(op, null, null);
    }

    /** Start {@code op} on this object; the native side holds its own reference meanwhile. */
    protected final CompletableFuture<NativeResult> callAsync(String op, String args, byte[] bytes) {
        try {
            return NativeBridge.async(handle, op, args, bytes);
        } finally {
            Reference.reachabilityFence(this);
        }
    }
}
