-- Extend a held lease. KEYS: lease pointer. ARGV: lease_id, ttl_ms, now_ms, key prefix
-- Returns {lease (packed), key}, or false when it is not held.
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = read_lock(lock)
if not cur then return false end
local head, tail = string.match(cur, '^([^\n]*\n[^\n]*\n[^\n]*\n)[^\n]*(\n.*)$')
if string.sub(head, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n' then return false end
local packed = head .. string.format('%d', tonumber(ARGV[3]) + tonumber(ARGV[2])) .. tail
redis.call('SET', lock, packed, 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {packed, string.sub(lock, #ARGV[4] + 6)}
