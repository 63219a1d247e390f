-- A lease is granted by one upsert that reads the next token from meta; these triggers store the
-- token back in the same statement, so tokens stay strictly increasing without a second
-- statement (see SqliteStore::try_acquire).
CREATE TRIGGER locks_fence_on_insert AFTER INSERT ON locks
BEGIN
    UPDATE meta SET value = NEW.fencing_token WHERE name = 'fencing_token';
END;

CREATE TRIGGER locks_fence_on_update AFTER UPDATE OF fencing_token ON locks
BEGIN
    UPDATE meta SET value = NEW.fencing_token WHERE name = 'fencing_token';
END;
