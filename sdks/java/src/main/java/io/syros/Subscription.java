package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeObject;
import io.syros.internal.NativeResult;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.concurrent.Flow;
import java.util.concurrent.SubmissionPublisher;

/**
 * A live event subscription: catch-up, then live. Pull events with {@link #next(Duration)} (or
 * iterate: {@link #hasNext()} waits until an event comes or the subscription is closed). Close
 * it when done; a pending {@code next} then ends. Read it from one thread at a time.
 */
public final class Subscription extends NativeObject implements Iterator<RecordedEvent>, AutoCloseable {
    private RecordedEvent buffered;
    private boolean ended;

    Subscription(NativeResult result) {
        super(result.takeHandle());
    }

    /**
     * The next event, waiting up to {@code timeout}; empty when none came in time or the
     * subscription ended ({@link #isEnded()}).
     */
    public Optional<RecordedEvent> next(Duration timeout) {
        if (buffered != null) {
            RecordedEvent event = buffered;
            buffered = null;
            return Optional.of(event);
        }
        if (ended) return Optional.empty();
        String args = timeout == null ? "{}" : Json.obj().put("timeout_ms", timeout.toMillis()).toString();
        Map<String, Object> item = call("next", args, null).map();
        Object event = item.get("event");
        if (event instanceof Map<?, ?>) {
            @SuppressWarnings("unchecked")
            Map<String, Object> map = (Map<String, Object>) event;
            return Optional.of(RecordedEvent.from(map));
        }
        if (Json.getBool(item, "ended")) ended = true;
        return Optional.empty();
    }

    /** Waits until an event comes (true) or the subscription ends (false). */
    @Override
    public boolean hasNext() {
        if (buffered != null) return true;
        while (!ended) {
            Optional<RecordedEvent> event = next(Duration.ofSeconds(1));
            if (event.isPresent()) {
                buffered = event.get();
                return true;
            }
        }
        return false;
    }

    /** The next event, waiting for it. */
    @Override
    public RecordedEvent next() {
        if (!hasNext()) throw new NoSuchElementException("the subscription ended");
        RecordedEvent event = buffered;
        buffered = null;
        return event;
    }

    /** Whether it ended (closed, or the stream of events finished). */
    public boolean isEnded() {
        return ended;
    }

    /**
     * The events as a {@link Flow.Publisher}: once the first subscriber subscribes, a daemon
     * thread pulls them into a {@link SubmissionPublisher} until the subscription is closed
     * (later subscribers see the events from when they subscribe).
     */
    public Flow.Publisher<RecordedEvent> publisher() {
        SubmissionPublisher<RecordedEvent> publisher = new SubmissionPublisher<>();
        java.util.concurrent.atomic.AtomicBoolean pumping = new java.util.concurrent.atomic.AtomicBoolean();
        // Start reading only once the first subscriber is registered: SubmissionPublisher drops
        // items submitted while nobody subscribes, and catch-up events are there at once.
        return subscriber -> {
            publisher.subscribe(subscriber);
            if (!pumping.compareAndSet(false, true)) return;
            Thread pump = new Thread(() -> {
                try {
                    while (hasNext()) publisher.submit(next());
                    publisher.close();
                } catch (RuntimeException e) {
                    publisher.closeExceptionally(e);
                }
            }, "syros-subscription");
            pump.setDaemon(true);
            pump.start();
        };
    }

    /** Stop following (idempotent). */
    @Override
    public void close() {
        call("close");
    }
}
