-- Delete a cache entry and its tag memberships. KEYS: entry hash. ARGV: tag key prefix
local old = redis.call('HGET', KEYS[1], 't')
if old then
  for tag in string.gmatch(old, '[^\n]+') do redis.call('SREM', ARGV[1] .. tag, KEYS[1]) end
end
return redis.call('DEL', KEYS[1])
