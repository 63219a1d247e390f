-- Drop whatever lease holds a key. KEYS: lock hash, lock index.
-- ARGV: user key, channel, lease pointer prefix
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at')
redis.call('ZREM', KEYS[2], ARGV[1])
if not cur[1] then return false end
redis.call('DEL', KEYS[1], ARGV[3] .. cur[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return {cur[1], cur[2], cur[3], cur[4], cur[5]}
