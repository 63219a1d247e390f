package io.syros;

/** Thrown by a {@link TaskHandler} to fail the attempt with a chosen error type. */
public class TaskFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String errorType;
    private final boolean nonRetryable;

    /** Fail with {@code errorType} (matched against the policy's non-retryable errors). */
    public TaskFailedException(String errorType, String message, boolean nonRetryable) {
        super(message);
        this.errorType = errorType;
        this.nonRetryable = nonRetryable;
    }

    /** The error type. */
    public String errorType() {
        return errorType;
    }

    /** Whether it must never be retried. */
    public boolean isNonRetryable() {
        return nonRetryable;
    }
}
