package io.syros.internal;

import io.syros.SyrosException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The JNI library's entry points (bindings/java). Operations are named by string and take their
 * arguments as one JSON object; see {@code bindings/java/src/ops.rs} for the list. Internal.
 */
public final class NativeBridge {
    private static final AtomicInteger THREADS = new AtomicInteger();

    /**
     * Completes async results off the Rust runtime's threads, so no caller's dependent stage ever
     * runs on them (daemon threads: they never keep the JVM alive).
     */
    private static final ExecutorService COMPLETIONS = new ThreadPoolExecutor(
            0, Integer.MAX_VALUE, 30, TimeUnit.SECONDS, new SynchronousQueue<>(),
            runnable -> {
                Thread thread = new Thread(runnable, "syros-completion-" + THREADS.incrementAndGet());
                thread.setDaemon(true);
                return thread;
            });

    static {
        NativeLoader.load();
        init();
    }

    private NativeBridge() {}

    private static native void init();

    /** Run {@code op} and block until it is done; throws the {@link SyrosException} of its code. */
    public static native NativeResult call(long handle, String op, String args, byte[] bytes);

    /** Start {@code op}; {@code future} is completed when it is done. Returns a cancel token. */
    public static native long callAsync(long handle, String op, String args, byte[] bytes,
                                        CompletableFuture<NativeResult> future);

    /** Drop the native object behind {@code handle} (once). */
    public static native void free(long handle);

    /** Abort the async call of {@code token}. */
    public static native void cancel(long token);

    /** Drop a cancel token (once its future is done). */
    public static native void freeToken(long token);

    /** Called from Rust: the exception for an error record. */
    static Throwable error(String recordJson) {
        return SyrosException.fromRecordJson(Json.parseObject(recordJson));
    }

    /** Called from Rust (attached for this call only): complete {@code future} on a Java thread. */
    static void complete(CompletableFuture<NativeResult> future, NativeResult result, Throwable error) {
        COMPLETIONS.execute(() -> {
            boolean accepted = error != null ? future.completeExceptionally(error) : future.complete(result);
            if (!accepted && result != null && result.handle != 0) {
                // Cancelled meanwhile: nobody will wrap the object (e.g. a lease): drop it.
                free(result.takeHandle());
            }
        });
    }

    /**
     * {@code source} mapped by {@code wrap}; cancelling the result cancels the native call, and a
     * result that arrives anyway is dropped (its object freed) rather than leaked.
     */
    public static <T> CompletableFuture<T> map(CompletableFuture<NativeResult> source,
                                               java.util.function.Function<NativeResult, T> wrap) {
        CompletableFuture<T> mapped = source.thenApply(wrap);
        mapped.whenComplete((value, error) -> {
            if (!mapped.isCancelled()) return;
            source.cancel(true);
            source.thenAccept(result -> {
                long handle = result.takeHandle();
                if (handle != 0) free(handle);
            });
        });
        return mapped;
    }

    /** {@link #callAsync} as a future; cancelling the future aborts the native work. */
    public static CompletableFuture<NativeResult> async(long handle, String op, String args, byte[] bytes) {
        CompletableFuture<NativeResult> future = new CompletableFuture<>();
        long token = callAsync(handle, op, args, bytes, future);
        future.whenComplete((value, error) -> {
            if (future.isCancelled()) cancel(token);
            freeToken(token);
        });
        return future;
    }
}
