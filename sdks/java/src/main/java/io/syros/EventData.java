package io.syros;

/**
 * An event to append.
 *
 * @param type         the event's type
 * @param dataJson     JSON payload
 * @param metadataJson JSON metadata, or null
 * @param eventId      unique id, or null (the client makes one, the same for its retries)
 */
public record EventData(String type, String dataJson, String metadataJson, String eventId) {
    /** An event of {@code type} with a JSON payload. */
    public static EventData of(String type, String dataJson) {
        return new EventData(type, dataJson, null, null);
    }
}
