package io.syros;

import io.syros.internal.Json;
import io.syros.internal.NativeResult;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The event store: {@code client.events()}. */
public final class Events {
    private final SyrosClient client;

    Events(SyrosClient client) {
        this.client = client;
    }

    /** Append {@code events} atomically if {@code stream} is at {@code expected}. */
    public AppendResult append(String stream, ExpectedVersion expected, List<EventData> events) {
        List<Object> list = new ArrayList<>();
        for (EventData e : events) {
            list.add(Json.obj().put("event_type", e.type()).put("data_json", e.dataJson())
                    .put("metadata_json", e.metadataJson()).put("event_id", e.eventId()).map());
        }
        Map<String, Object> m = client.op("append", Json.obj().put("stream", stream)
                .put("expected", expected.json()).put("events", list).toString(), null).map();
        return new AppendResult(Json.getLong(m, "last_version"), Json.getLong(m, "first_position"),
                Json.getLong(m, "last_position"));
    }

    /** Append events ({@code varargs} form). */
    public AppendResult append(String stream, ExpectedVersion expected, EventData... events) {
        return append(stream, expected, List.of(events));
    }

    private ReadResult read(String stream, long from, boolean backwards, int limit) {
        Map<String, Object> m = client.op("read", Json.obj().put("stream", stream)
                .put("start", from < 0 ? null : from).put("backwards", backwards).put("limit", limit)
                .toString(), null).map();
        List<RecordedEvent> events = new ArrayList<>();
        for (Map<String, Object> e : Json.getObjects(m, "events")) events.add(RecordedEvent.from(e));
        return new ReadResult(events, Json.getLong(m, "last"), Json.getBool(m, "exists"));
    }

    /** Read {@code stream} forwards from {@code fromVersion} (inclusive), at most {@code limit} (0: default). */
    public ReadResult read(String stream, long fromVersion, int limit) {
        return read(stream, fromVersion, false, limit);
    }

    /** Read {@code stream} from its first event (the server's default page size). */
    public ReadResult read(String stream) {
        return read(stream, 0, false, 0);
    }

    /** Read {@code stream} backwards from its end, newest first. */
    public ReadResult readBackwards(String stream, int limit) {
        return read(stream, -1, true, limit);
    }

    /** Read all streams by global position from {@code fromPosition} (inclusive). */
    public ReadResult readAll(long fromPosition, int limit) {
        return read(null, fromPosition, false, limit);
    }

    /**
     * Follow {@code stream}: catch-up from {@code from}, then live; resumes after reconnecting
     * with no gap and no duplicate. Close it when done (try-with-resources).
     */
    public Subscription subscribe(String stream, SubscribeFrom from) {
        NativeResult result = client.op("subscribe", Json.obj().put("stream", stream).put("from", from.json()).toString(), null);
        return new Subscription(result);
    }

    /** Follow every stream by global position. */
    public Subscription subscribeAll(SubscribeFrom from) {
        return subscribe(null, from);
    }
}
