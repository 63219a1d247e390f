package io.syros;

import java.util.Map;

/** The request was malformed: a bad name, size, TTL or argument. Code {@code invalid_argument}. */
public class InvalidArgumentException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code invalid_argument}. */
    public InvalidArgumentException(String message, boolean retryable, Map<String, String> details) {
        super("invalid_argument", message, retryable, details);
    }
}
