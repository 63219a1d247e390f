-- Drop whatever lease holds a key and announce it. KEYS: lock hash, lock index.
-- ARGV: user key, channel, lease pointer prefix, origin (the announcing store instance)
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at')
redis.call('ZREM', KEYS[2], ARGV[1])
if not cur[1] then return false end
redis.call('DEL', KEYS[1], ARGV[3] .. cur[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({
  key = ARGV[1], lease_id = cur[1], owner = cur[2], token = cur[3], acquired_at = cur[4],
  expires_at = cur[5], origin = ARGV[4], forced = true}))
return {cur[1], cur[2], cur[3], cur[4], cur[5]}
