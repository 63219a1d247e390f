-- Move the fencing counter up to the first token of a new epoch (never down).
-- KEYS: fence counter. ARGV: the epoch's first token minus one.
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
