package io.syros;

import io.syros.internal.Json;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** Sagas: {@code client.sagas()}. Steps run in workers ({@link SyrosClient#worker}). */
public final class Sagas {
    private final SyrosClient client;

    Sagas(SyrosClient client) {
        this.client = client;
    }

    private static String id(String sagaId) {
        return Json.obj().put("saga_id", sagaId).toString();
    }

    /** Start a saga (or get the one started with the same idempotency key). */
    public SagaInfo start(SagaDefinition saga) {
        return SagaInfo.from(client.op("start_saga", saga.toJson(), null).map());
    }

    /** One saga ({@link NotFoundException} if unknown). */
    public SagaInfo get(String sagaId) {
        return SagaInfo.from(client.op("get_saga", id(sagaId), null).map());
    }

    /** Sagas, newest first, optionally of one state and/or name (null: any); {@code limit} 0 = default. */
    public List<SagaInfo> list(SagaState state, String name, int limit) {
        Object value = client.op("list_sagas", Json.obj().put("state", state == null ? null : state.wireName())
                .put("name", name).put("limit", limit).toString(), null).value();
        List<SagaInfo> out = new ArrayList<>();
        if (value instanceof List<?> list) {
            for (Object each : list) {
                @SuppressWarnings("unchecked")
                Map<String, Object> map = (Map<String, Object>) each;
                out.add(SagaInfo.from(map));
            }
        }
        return out;
    }

    /** Cancel a saga: what completed is compensated. */
    public SagaInfo cancel(String sagaId) {
        return SagaInfo.from(client.op("cancel_saga", id(sagaId), null).map());
    }

    /** Wait until the saga is final, at most {@code timeout} (then {@link DeadlineExceededException}). */
    public SagaInfo await(String sagaId, Duration timeout) {
        return SagaInfo.from(client.op("wait_saga", Json.obj().put("saga_id", sagaId)
                .put("timeout_ms", timeout.toMillis()).toString(), null).map());
    }

    /** {@link #await} without blocking. */
    public CompletableFuture<SagaInfo> awaitAsync(String sagaId, Duration timeout) {
        return io.syros.internal.NativeBridge.map(client.opAsync("wait_saga", Json.obj().put("saga_id", sagaId)
                .put("timeout_ms", timeout.toMillis()).toString()), r -> SagaInfo.from(r.map()));
    }
}
