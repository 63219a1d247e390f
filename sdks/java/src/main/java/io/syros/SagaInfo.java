package io.syros;

import io.syros.internal.Json;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A saga as the server has it.
 *
 * @param sagaId         its id
 * @param name           its label
 * @param state          where it is
 * @param inputJson      its input
 * @param idempotencyKey its idempotency key, or null
 * @param steps          its steps, in order
 * @param createdAtMs    when it was started
 * @param updatedAtMs    its last transition
 */
public record SagaInfo(String sagaId, String name, SagaState state, String inputJson, String idempotencyKey,
                       List<Step> steps, long createdAtMs, long updatedAtMs) {
    /**
     * One step's state.
     *
     * @param name         step name
     * @param service      worker service
     * @param action       action handler
     * @param compensation compensation handler, or null
     * @param state        the step's state ({@code completed}, {@code compensated}, ...)
     * @param outputJson   its output, or null
     * @param attempts     attempts made (action and compensation)
     */
    public record Step(String name, String service, String action, String compensation, String state,
                       String outputJson, List<Attempt> attempts) {}

    /**
     * One attempt of a step.
     *
     * @param attempt      1 for the first
     * @param kind         {@code action} or {@code compensation}
     * @param startedAtMs  when it started
     * @param finishedAtMs when it finished (0: not yet)
     * @param errorType    its error type, or null
     * @param errorMessage its error message, or null
     */
    public record Attempt(long attempt, String kind, long startedAtMs, long finishedAtMs, String errorType,
                          String errorMessage) {}

    static SagaInfo from(Map<String, Object> m) {
        List<Step> steps = new ArrayList<>();
        for (Map<String, Object> s : Json.getObjects(m, "steps")) {
            List<Attempt> attempts = new ArrayList<>();
            for (Map<String, Object> a : Json.getObjects(s, "attempts")) {
                attempts.add(new Attempt(Json.getLong(a, "attempt"), Json.getString(a, "kind"),
                        Json.getLong(a, "started_at_ms"), Json.getLong(a, "finished_at_ms"),
                        Json.getString(a, "error_type"), Json.getString(a, "error_message")));
            }
            steps.add(new Step(Json.getString(s, "name"), Json.getString(s, "service"), Json.getString(s, "action"),
                    Json.getString(s, "compensation"), Json.getString(s, "state"), Json.getString(s, "output_json"),
                    attempts));
        }
        return new SagaInfo(Json.getString(m, "saga_id"), Json.getString(m, "name"),
                SagaState.fromWire(Json.getString(m, "state")), Json.getString(m, "input_json"),
                Json.getString(m, "idempotency_key"), steps, Json.getLong(m, "created_at_ms"),
                Json.getLong(m, "updated_at_ms"));
    }
}
