package io.syros;

import io.syros.internal.Json;
import java.util.Map;

/**
 * A stored event.
 *
 * @param stream         its stream
 * @param version        its version in the stream (0 for the first event, then 1, 2, ... with no gaps)
 * @param globalPosition its position among all events
 * @param eventId        its id
 * @param type           its type
 * @param dataJson       its JSON payload
 * @param metadataJson   its JSON metadata, or null
 * @param createdAtMs    when it was stored (ms since the epoch)
 */
public record RecordedEvent(String stream, long version, long globalPosition, String eventId, String type,
                            String dataJson, String metadataJson, long createdAtMs) {
    static RecordedEvent from(Map<String, Object> m) {
        return new RecordedEvent(Json.getString(m, "stream"), Json.getLong(m, "version"),
                Json.getLong(m, "global_position"), Json.getString(m, "event_id"), Json.getString(m, "event_type"),
                Json.getString(m, "data_json"), Json.getString(m, "metadata_json"), Json.getLong(m, "created_at_ms"));
    }
}
