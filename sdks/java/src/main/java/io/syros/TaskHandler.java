package io.syros;

/**
 * A saga step handler: returns the step's output as JSON text (null: JSON {@code null}). Throw
 * {@link TaskFailedException} to choose the error type and whether it may be retried; any other
 * exception fails the attempt with its class's simple name as the error type (retryable).
 */
@FunctionalInterface
public interface TaskHandler {
    /** Run {@code task}; the output (JSON). */
    String handle(Task task) throws Exception;
}
