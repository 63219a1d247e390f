-- Request ids of applied cache sets, remembered for a while so a retried set (its reply was lost)
-- changes nothing: it cannot bring back a value that invalidate_tag removed meanwhile.
CREATE TABLE cache_set_requests (
    request_id          TEXT PRIMARY KEY NOT NULL,
    entry_expires_at_ms INTEGER,          -- the expiry the first set gave (NULL: none)
    forget_at_ms        INTEGER NOT NULL
);
CREATE INDEX cache_set_requests_forget ON cache_set_requests (forget_at_ms);
