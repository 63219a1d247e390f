-- Replace a cache entry and its tags. KEYS: entry hash [, request marker].
-- ARGV: value, ttl_ms ('0' = none), expires_at_ms ('' = none), tag key prefix,
--       marker ttl_ms (used with a request marker), tags...
-- Returns {1, ''} when stored; {0, expires_at_ms of the first set} when the request marker shows
-- this request was applied before (a retry): then nothing changes, so a retry cannot bring back
-- a value that was invalidated meanwhile.
if KEYS[2] then
  local earlier = redis.call('GET', KEYS[2])
  if earlier then return {0, earlier} end
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
end
local old = redis.call('HGET', KEYS[1], 't')
if old then
  for tag in string.gmatch(old, '[^\n]+') do redis.call('SREM', ARGV[4] .. tag, KEYS[1]) end
end
redis.call('DEL', KEYS[1])
local tags = {}
for i = 6, #ARGV do tags[#tags + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[3], 't', table.concat(tags, '\n'))
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
for _, tag in ipairs(tags) do
  local set = ARGV[4] .. tag
  local existed = redis.call('EXISTS', set) == 1
  redis.call('SADD', set, KEYS[1])
  -- A tag set lives as long as its longest-lived member, so expired entries do not leave
  -- tag sets behind forever.
  if ttl == 0 then
    redis.call('PERSIST', set)
  else
    local left = redis.call('PTTL', set)
    if not (existed and left == -1) and left < ttl then redis.call('PEXPIRE', set, ttl) end
  end
end
return {1, ''}
