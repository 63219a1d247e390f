package io.syros;

import io.syros.internal.Json;
import java.util.Map;

/**
 * A saga step task handed to a worker's handler.
 *
 * @param taskId              the task's id
 * @param sagaId              the saga it belongs to
 * @param stepName            the step it runs
 * @param handler             the action or compensation handler name
 * @param isCompensation      true for a compensation
 * @param attempt             1 for the first attempt
 * @param idempotencyKey      the same for every redelivery and retry of this step's action (or
 *                            compensation): use it to make the handler's effect happen once
 * @param inputJson           the saga's input
 * @param previousOutputsJson outputs of completed steps, by step name (a JSON object)
 * @param timeoutMs           the attempt is reported failed after this
 */
public record Task(String taskId, String sagaId, String stepName, String handler, boolean isCompensation,
                   long attempt, String idempotencyKey, String inputJson, String previousOutputsJson,
                   long timeoutMs) {
    static Task from(Map<String, Object> m) {
        return new Task(Json.getString(m, "task_id"), Json.getString(m, "saga_id"), Json.getString(m, "step_name"),
                Json.getString(m, "handler"), Json.getBool(m, "is_compensation"), Json.getLong(m, "attempt"),
                Json.getString(m, "idempotency_key"), Json.getString(m, "input_json"),
                Json.getString(m, "previous_outputs_json"), Json.getLong(m, "timeout_ms"));
    }
}
