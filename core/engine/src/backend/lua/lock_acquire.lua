-- Grant a lock if free. KEYS: lock hash, fence counter, lease pointer, lock index (zset)
-- ARGV: lease_id, owner, ttl_ms, request_id ('' = none), now_ms, user key,
--       first and end (exclusive) token of the fencing epoch this connection verified
-- Returns {1, lease...} granted, {0, lease...} held by someone else, {3} the counter is not in
-- the verified epoch (Redis lost it, another server moved it on, or Redis changed underneath):
-- nothing is granted, the caller verifies Redis again.
local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'request_id')
if cur[1] then
  if ARGV[4] ~= '' and cur[6] == ARGV[4] and cur[2] == ARGV[2] then
    return {1, cur[1], cur[2], cur[3], cur[4], cur[5]}
  end
  return {0, cur[1], cur[2], cur[3], cur[4], cur[5]}
end
-- Tokens stay below 2^53 (epochs below 8192), so Lua's doubles hold them exactly.
local token = redis.call('INCR', KEYS[2])
if token < tonumber(ARGV[7]) or token >= tonumber(ARGV[8]) then
  return {3}
end
token = string.format('%d', token)
local expires = tonumber(ARGV[5]) + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_id', ARGV[1], 'owner', ARGV[2], 'token', token,
  'acquired_at', ARGV[5], 'expires_at', expires, 'request_id', ARGV[4], 'key', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], KEYS[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
return {1, ARGV[1], ARGV[2], token, ARGV[5], tostring(expires)}
