-- Extend a held lease. KEYS: lease pointer. ARGV: lease_id, ttl_ms, now_ms
-- Returns the lease, or false when it is not held.
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = redis.call('HMGET', lock, 'lease_id', 'owner', 'token', 'acquired_at', 'key')
if cur[1] ~= ARGV[1] then return false end
local expires = tonumber(ARGV[3]) + tonumber(ARGV[2])
redis.call('HSET', lock, 'expires_at', expires)
redis.call('PEXPIRE', lock, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {cur[1], cur[2], cur[3], cur[4], tostring(expires), cur[5]}
