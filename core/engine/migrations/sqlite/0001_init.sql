-- Syros embedded store (SQLite). Times are milliseconds since the Unix epoch.

-- Counters that must survive restarts. `fencing_token` is the last token handed out; tokens are
-- global, so they strictly increase per key as well.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('fencing_token', 0);

-- One row per key that has (or had, until it expired) a holder. Released leases are deleted.
CREATE TABLE locks (
    key            TEXT PRIMARY KEY NOT NULL,
    lease_id       TEXT NOT NULL UNIQUE,
    owner          TEXT NOT NULL,
    fencing_token  INTEGER NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    request_id     TEXT
);
CREATE INDEX locks_expires_at ON locks (expires_at_ms);

CREATE TABLE cache_entries (
    key           TEXT PRIMARY KEY NOT NULL,
    value         BLOB NOT NULL,
    expires_at_ms INTEGER            -- NULL: never expires
);
CREATE INDEX cache_entries_expires_at ON cache_entries (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

CREATE TABLE cache_tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
);
CREATE INDEX cache_tags_key ON cache_tags (key);

-- The event log. `position` is the global position (AUTOINCREMENT: never reused, commit order
-- because the embedded store has a single writer).
CREATE TABLE events (
    position      INTEGER PRIMARY KEY AUTOINCREMENT,
    stream        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    data          TEXT NOT NULL,
    metadata      TEXT,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (stream, version)
);

CREATE TABLE streams (
    stream       TEXT PRIMARY KEY NOT NULL,
    last_version INTEGER NOT NULL
);
