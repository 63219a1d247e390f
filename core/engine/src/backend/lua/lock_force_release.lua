-- Drop whatever lease holds a key, announce it, and hand the key to the first live waiter.
-- KEYS: lock key.
-- ARGV: 1 user key, 2 lease pointer prefix, 3 origin (this replica), 4 now_ms, 5, 6 the verified
--       fencing epoch's first and end token, 7 key prefix
-- Returns false when nothing held the key; else {dropped lease (packed), hand-off} with
-- hand-off as lock_release.lua returns it.
local cur = read_lock(KEYS[1])
if not cur then return false end
redis.call('DEL', KEYS[1], ARGV[2] .. string.match(cur, '^[^\n]*'))
announce_release(ARGV[7], ARGV[1], cur, ARGV[3], ARGV[4], true)
local head = grant_to_head(ARGV[7], ARGV[1], ARGV[4], ARGV[5], ARGV[6], ARGV[3])
return with_hand_off({cur}, head)
