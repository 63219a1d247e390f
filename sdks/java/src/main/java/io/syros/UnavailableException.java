package io.syros;

import java.util.Map;

/** The server could not be reached or is not serving; retrying later may help. Code {@code unavailable}. */
public class UnavailableException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code unavailable}. */
    public UnavailableException(String message, boolean retryable, Map<String, String> details) {
        super("unavailable", message, retryable, details);
    }
}
