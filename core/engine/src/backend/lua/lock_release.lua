-- Release a held lease and announce it. KEYS: lease pointer, lock index.
-- ARGV: lease_id, channel, origin (the announcing store instance)
-- Returns the released lease, or false when it is not held.
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = redis.call('HMGET', lock, 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'key')
if cur[1] ~= ARGV[1] then return false end
redis.call('DEL', lock, KEYS[1])
redis.call('ZREM', KEYS[2], cur[6])
redis.call('PUBLISH', ARGV[2], cjson.encode({
  key = cur[6], lease_id = cur[1], owner = cur[2], token = cur[3], acquired_at = cur[4],
  expires_at = cur[5], origin = ARGV[3], forced = false}))
return {cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]}
