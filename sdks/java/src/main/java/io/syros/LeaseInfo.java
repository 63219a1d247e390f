package io.syros;

import io.syros.internal.Json;
import java.util.Map;

/**
 * A lease as the server granted it.
 *
 * @param leaseId      opaque identifier
 * @param key          the locked key
 * @param owner        who holds it
 * @param fencingToken strictly increasing per key: pass it to the resource the lock protects
 * @param acquiredAtMs when it was granted (ms since the epoch, server clock)
 * @param expiresAtMs  when it expires unless renewed (ms since the epoch, server clock)
 */
public record LeaseInfo(String leaseId, String key, String owner, long fencingToken, long acquiredAtMs,
                        long expiresAtMs) {
    static LeaseInfo from(Map<String, Object> m) {
        return m == null ? null : new LeaseInfo(Json.getString(m, "lease_id"), Json.getString(m, "key"),
                Json.getString(m, "owner"), Json.getLong(m, "fencing_token"), Json.getLong(m, "acquired_at_ms"),
                Json.getLong(m, "expires_at_ms"));
    }
}
