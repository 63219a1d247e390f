package io.syros;

import java.util.Map;

/** An append's expected version did not match the stream's (optimistic concurrency). Code {@code version_conflict}. */
public class VersionConflictException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code version_conflict}. */
    public VersionConflictException(String message, boolean retryable, Map<String, String> details) {
        super("version_conflict", message, retryable, details);
    }
}
