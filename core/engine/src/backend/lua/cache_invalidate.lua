-- Remove every entry of a tag, atomically. KEYS: tag set. ARGV: tag key prefix
local removed = 0
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local tags = redis.call('HGET', entry, 't')
  if tags then
    for tag in string.gmatch(tags, '[^\n]+') do
      local set = ARGV[1] .. tag
      if set ~= KEYS[1] then redis.call('SREM', set, entry) end
    end
  end
  removed = removed + redis.call('DEL', entry)
end
redis.call('DEL', KEYS[1])
return removed
