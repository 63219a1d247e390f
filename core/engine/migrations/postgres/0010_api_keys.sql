-- API keys for service-to-service authentication. Only a SHA-256 digest of each key is kept;
-- the key itself is shown once, when it is created. A revoked key keeps its row (for `apikey
-- list`) with revoked_at_ms set. Every replica reads the same table, so a revocation reaches all.
CREATE TABLE syros_api_keys (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    roles         JSONB NOT NULL,
    key_hash      TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
