-- The lock writer now hands out fencing tokens from the counter it reads in its write
-- transaction and stores the counter back once per transaction (backend/sqlite/lock_writer.rs,
-- FencingCounter): the per-grant triggers of 0004 are no longer needed.
DROP TRIGGER IF EXISTS locks_fence_on_insert;
DROP TRIGGER IF EXISTS locks_fence_on_update;
