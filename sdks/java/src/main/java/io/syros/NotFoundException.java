package io.syros;

import java.util.Map;

/** The saga, stream or object named does not exist. Code {@code not_found}. */
public class NotFoundException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code not_found}. */
    public NotFoundException(String message, boolean retryable, Map<String, String> details) {
        super("not_found", message, retryable, details);
    }
}
