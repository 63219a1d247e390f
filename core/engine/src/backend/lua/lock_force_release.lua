-- Drop whatever lease holds a key, announce it, and hand the key to the first live waiter.
-- KEYS: lock hash, lock index.
-- ARGV: 1 user key, 2 channel, 3 lease pointer prefix, 4 origin (the announcing store instance,
--       also this replica), 5 now_ms, 6, 7 the verified fencing epoch's first and end token,
--       8 key prefix
-- Returns false when nothing held the key; else {dropped lease (5 fields), hand-off} with
-- hand-off as lock_release.lua returns it.
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at')
redis.call('ZREM', KEYS[2], ARGV[1])
if not cur[1] then return false end
redis.call('DEL', KEYS[1], ARGV[3] .. cur[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({
  key = ARGV[1], lease_id = cur[1], owner = cur[2], token = cur[3], acquired_at = cur[4],
  expires_at = cur[5], origin = ARGV[4], forced = true}))
local head = grant_to_head(ARGV[8], ARGV[1], ARGV[5], ARGV[6], ARGV[7], ARGV[4])
return with_hand_off({cur[1], cur[2], cur[3], cur[4], cur[5]}, head)
