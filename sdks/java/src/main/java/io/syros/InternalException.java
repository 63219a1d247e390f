package io.syros;

import java.util.Map;

/** An unexpected failure inside the server or the client core. Code {@code internal}. */
public class InternalException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code internal}. */
    public InternalException(String message, boolean retryable, Map<String, String> details) {
        super("internal", message, retryable, details);
    }
}
