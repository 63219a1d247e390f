package io.syros;

import java.util.List;

/**
 * A page of events.
 *
 * @param events the events, in the order read
 * @param last   the stream's last version (or the last global position, for all streams)
 * @param exists whether the stream exists
 */
public record ReadResult(List<RecordedEvent> events, long last, boolean exists) {}
