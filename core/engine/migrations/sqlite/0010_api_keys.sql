-- API keys for service-to-service authentication. Only a SHA-256 digest of each key is kept;
-- the key itself is shown once, when it is created. A revoked key keeps its row (for `apikey
-- list`) with revoked_at_ms set.
CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
