package io.syros;

import java.util.Map;

/** The call's time limit passed; retrying later may help. Code {@code deadline_exceeded}. */
public class DeadlineExceededException extends SyrosException {
    private static final long serialVersionUID = 1L;

    /** An error of code {@code deadline_exceeded}. */
    public DeadlineExceededException(String message, boolean retryable, Map<String, String> details) {
        super("deadline_exceeded", message, retryable, details);
    }
}
