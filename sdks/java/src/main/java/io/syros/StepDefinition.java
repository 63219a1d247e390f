package io.syros;

import io.syros.internal.Json;
import java.time.Duration;
import java.util.Map;

/**
 * One step of a saga.
 *
 * @param name         unique among the saga's steps
 * @param service      the worker service that runs it
 * @param action       its action handler
 * @param compensation its compensation handler, or null if it cannot be undone
 * @param timeout      start-to-close timeout of one attempt, or null (the server's default)
 * @param retry        overrides the saga's retry policy, or null
 */
public record StepDefinition(String name, String service, String action, String compensation, Duration timeout,
                             RetryPolicy retry) {
    /** A step with the default timeout and retry policy. */
    public static StepDefinition of(String name, String service, String action, String compensation) {
        return new StepDefinition(name, service, action, compensation, null, null);
    }

    Map<String, Object> json() {
        return Json.obj().put("name", name).put("service", service).put("action", action)
                .put("compensation", compensation).put("timeout_ms", timeout == null ? null : timeout.toMillis())
                .put("retry", retry == null ? null : retry.json()).map();
    }
}
