package io.syros;

import java.util.Map;

/** A computation handed to the SDK (a get-or-compute supplier) failed. Code {@code callback_failed}. */
public class CallbackFailedException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code callback_failed}. */
    public CallbackFailedException(String message, boolean retryable, Map<String, String> details) {
        super("callback_failed", message, retryable, details);
    }
}
