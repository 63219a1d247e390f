package io.syros;

import java.util.Map;

/** The call was cancelled, or the client was closed. Code {@code cancelled}. */
public class CancelledException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code cancelled}. */
    public CancelledException(String message, boolean retryable, Map<String, String> details) {
        super("cancelled", message, retryable, details);
    }
}
