-- Drop whatever lease holds a key, announce it, and hand the key to the first live waiter.
-- KEYS: lock hash.
-- ARGV: 1 user key, 2 lease pointer prefix, 3 origin (this replica), 4 now_ms, 5, 6 the verified
--       fencing epoch's first and end token, 7 key prefix
-- Returns false when nothing held the key; else {dropped lease (5 fields), hand-off} with
-- hand-off as lock_release.lua returns it.
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at')
if not cur[1] then return false end
redis.call('DEL', KEYS[1], ARGV[2] .. cur[1])
announce_release(ARGV[7], ARGV[1], cur, ARGV[3], ARGV[4], true)
local head = grant_to_head(ARGV[7], ARGV[1], ARGV[4], ARGV[5], ARGV[6], ARGV[3])
return with_hand_off({cur[1], cur[2], cur[3], cur[4], cur[5]}, head)
