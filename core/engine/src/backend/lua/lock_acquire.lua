-- Grant a lock if free. KEYS: lock hash, fence counter, lease pointer, lock index (zset)
-- ARGV: lease_id, owner, ttl_ms, request_id ('' = none), now_ms, user key
-- Returns {1, lease...} granted, {0, lease...} held by someone else, {2} no fencing epoch yet.
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'request_id')
if cur[1] then
  if ARGV[4] ~= '' and cur[6] == ARGV[4] and cur[2] == ARGV[2] then
    return {1, cur[1], cur[2], cur[3], cur[4], cur[5]}
  end
  return {0, cur[1], cur[2], cur[3], cur[4], cur[5]}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {2}
end
local token = redis.call('INCR', KEYS[2])
local expires = tonumber(ARGV[5]) + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_id', ARGV[1], 'owner', ARGV[2], 'token', token,
  'acquired_at', ARGV[5], 'expires_at', expires, 'request_id', ARGV[4], 'key', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], KEYS[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
return {1, ARGV[1], ARGV[2], tostring(token), ARGV[5], tostring(expires)}
