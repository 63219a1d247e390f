package io.syros;

import io.syros.internal.Json;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * Server-side retry policy of a saga or a step.
 *
 * @param initialInterval     delay before the first retry
 * @param backoffCoefficient  growth of the delay per retry
 * @param maximumInterval     largest delay
 * @param maximumAttempts     attempts in total
 * @param nonRetryableErrors  error types never retried
 */
public record RetryPolicy(Duration initialInterval, double backoffCoefficient, Duration maximumInterval,
                          int maximumAttempts, List<String> nonRetryableErrors) {
    /** Up to {@code attempts} attempts, 100 ms doubling to 10 s, every error retryable. */
    public static RetryPolicy maxAttempts(int attempts) {
        return new RetryPolicy(Duration.ofMillis(100), 2.0, Duration.ofSeconds(10), attempts, List.of());
    }

    Map<String, Object> json() {
        return Json.obj().put("initial_interval_ms", initialInterval.toMillis())
                .put("backoff_coefficient", backoffCoefficient)
                .put("maximum_interval_ms", maximumInterval.toMillis())
                .put("maximum_attempts", maximumAttempts)
                .put("non_retryable_errors", nonRetryableErrors == null ? List.of() : nonRetryableErrors).map();
    }
}
