package io.syros;

import io.syros.internal.Json;
import java.util.ArrayList;
import java.util.List;

/**
 * A saga to start: {@code SagaDefinition.builder("order").step(...).input("{...}").build()}.
 */
public final class SagaDefinition {
    private final String name;
    private final List<StepDefinition> steps;
    private final String inputJson;
    private final String idempotencyKey;
    private final RetryPolicy retry;

    private SagaDefinition(Builder b) {
        this.name = b.name;
        this.steps = List.copyOf(b.steps);
        this.inputJson = b.inputJson;
        this.idempotencyKey = b.idempotencyKey;
        this.retry = b.retry;
    }

    /** A saga named {@code name} (a label for listing). */
    public static Builder builder(String name) {
        return new Builder(name);
    }

    String toJson() {
        List<Object> list = new ArrayList<>();
        for (StepDefinition step : steps) list.add(step.json());
        return Json.obj().put("name", name).put("steps", list).put("input_json", inputJson)
                .put("idempotency_key", idempotencyKey).put("retry", retry == null ? null : retry.json()).toString();
    }

    /** Builds a {@link SagaDefinition}. */
    public static final class Builder {
        private final String name;
        private final List<StepDefinition> steps = new ArrayList<>();
        private String inputJson = "{}";
        private String idempotencyKey;
        private RetryPolicy retry;

        private Builder(String name) {
            this.name = name;
        }

        /** Add a step (in order). */
        public Builder step(StepDefinition step) {
            steps.add(step);
            return this;
        }

        /** Add a step run by {@code service}'s {@code action}, undone by {@code compensation} (or null). */
        public Builder step(String name, String service, String action, String compensation) {
            return step(StepDefinition.of(name, service, action, compensation));
        }

        /** JSON handed to every step. */
        public Builder input(String json) {
            this.inputJson = json;
            return this;
        }

        /** Starting again with the same key returns the existing saga. */
        public Builder idempotencyKey(String key) {
            this.idempotencyKey = key;
            return this;
        }

        /** The saga-wide retry policy. */
        public Builder retry(RetryPolicy retry) {
            this.retry = retry;
            return this;
        }

        /** The definition. */
        public SagaDefinition build() {
            return new SagaDefinition(this);
        }
    }
}
