package io.syros;

import java.util.Map;

/** The request may or may not have been applied (the reply was lost). Code {@code outcome_unknown}. */
public class OutcomeUnknownException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code outcome_unknown}. */
    public OutcomeUnknownException(String message, boolean retryable, Map<String, String> details) {
        super("outcome_unknown", message, retryable, details);
    }
}
