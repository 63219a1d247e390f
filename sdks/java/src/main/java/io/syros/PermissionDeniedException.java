package io.syros;

import java.util.Map;

/** The token does not allow this call. Code {@code permission_denied}. */
public class PermissionDeniedException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code permission_denied}. */
    public PermissionDeniedException(String message, boolean retryable, Map<String, String> details) {
        super("permission_denied", message, retryable, details);
    }
}
