package io.syros;

import java.util.Map;

/** The lease is no longer held by this owner (released, expired or taken over). Code {@code lock_not_held}. */
public class LockNotHeldException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code lock_not_held}. */
    public LockNotHeldException(String message, boolean retryable, Map<String, String> details) {
        super("lock_not_held", message, retryable, details);
    }
}
