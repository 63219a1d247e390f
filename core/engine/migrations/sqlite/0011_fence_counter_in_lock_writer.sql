-- The lock writer hands out fencing tokens from the counter it reads in its write transaction
-- and stores the counter back once per transaction (backend/sqlite/lock_writer.rs,
-- FencingCounter): the per-grant triggers of 0004 go.
DROP TRIGGER IF EXISTS locks_fence_on_insert;
DROP TRIGGER IF EXISTS locks_fence_on_update;

-- The locks table keyed by `key` itself (WITHOUT ROWID): a grant or release writes the table and
-- its two indexes, not also a separate index on the primary key (one page fewer per commit).
CREATE TABLE locks_by_key (
    key            TEXT PRIMARY KEY NOT NULL,
    lease_id       TEXT NOT NULL UNIQUE,
    owner          TEXT NOT NULL,
    fencing_token  INTEGER NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    request_id     TEXT
) WITHOUT ROWID;
INSERT INTO locks_by_key (key, lease_id, owner, fencing_token, acquired_at_ms, expires_at_ms, request_id)
    SELECT key, lease_id, owner, fencing_token, acquired_at_ms, expires_at_ms, request_id FROM locks;
DROP TABLE locks;
ALTER TABLE locks_by_key RENAME TO locks;
CREATE INDEX locks_expires_at ON locks (expires_at_ms);
