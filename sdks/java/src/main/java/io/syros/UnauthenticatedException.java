package io.syros;

import java.util.Map;

/** The bearer token is missing or invalid. Code {@code unauthenticated}. */
public class UnauthenticatedException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code unauthenticated}. */
    public UnauthenticatedException(String message, boolean retryable, Map<String, String> details) {
        super("unauthenticated", message, retryable, details);
    }
}
