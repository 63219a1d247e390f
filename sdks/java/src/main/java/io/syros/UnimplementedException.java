package io.syros;

import java.util.Map;

/** The server does not implement this call. Code {@code unimplemented}. */
public class UnimplementedException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code unimplemented}. */
    public UnimplementedException(String message, boolean retryable, Map<String, String> details) {
        super("unimplemented", message, retryable, details);
    }
}
