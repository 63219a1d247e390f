package io.syros;

import java.util.Map;

/** A value, event or request is larger than the server accepts. Code {@code payload_too_large}. */
public class PayloadTooLargeException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code payload_too_large}. */
    public PayloadTooLargeException(String message, boolean retryable, Map<String, String> details) {
        super("payload_too_large", message, retryable, details);
    }
}
