package io.syros;

import java.util.Locale;

/** Where a saga is. */
public enum SagaState {
    /** Not started yet. */
    PENDING,
    /** Running its steps. */
    RUNNING,
    /** Undoing completed steps. */
    COMPENSATING,
    /** Every step completed. */
    COMPLETED,
    /** A step failed; completed steps were undone. */
    COMPENSATED,
    /** A compensation failed for good. */
    COMPENSATION_FAILED,
    /** Cancelled; completed steps were undone. */
    CANCELLED;

    /** Whether the saga will not change any more. */
    public boolean isFinal() {
        return this == COMPLETED || this == COMPENSATED || this == COMPENSATION_FAILED || this == CANCELLED;
    }

    /** The wire name ({@code compensation_failed}). */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    static SagaState fromWire(String name) {
        return valueOf(name.toUpperCase(Locale.ROOT));
    }
}
