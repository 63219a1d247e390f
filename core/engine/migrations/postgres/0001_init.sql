-- Syros on PostgreSQL: events (and, with the saga orchestrator, saga state).

CREATE TABLE syros_meta (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
-- `event_position`: the last global position handed out. Every append updates this row first,
-- which serialises appends so positions are gap-free and become visible in order.
-- `fence_epoch`: durable fencing epochs for the Redis lock store.
INSERT INTO syros_meta (name, value) VALUES ('event_position', 0), ('fence_epoch', 0);

CREATE TABLE syros_streams (
    stream       TEXT PRIMARY KEY,
    last_version BIGINT NOT NULL
);

CREATE TABLE syros_events (
    position      BIGINT PRIMARY KEY,
    stream        TEXT NOT NULL,
    version       BIGINT NOT NULL,
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    data          JSON NOT NULL,
    metadata      JSON,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (stream, version)
);
