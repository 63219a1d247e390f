package io.syros;

import java.util.Map;

/** The lock was still held by someone else when the wait ended; details name the holder. Code {@code lock_timeout}. */
public class LockTimeoutException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code lock_timeout}. */
    public LockTimeoutException(String message, boolean retryable, Map<String, String> details) {
        super("lock_timeout", message, retryable, details);
    }
}
