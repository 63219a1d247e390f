-- Grant a lock if free and nobody queued first; otherwise queue the caller (when it waits).
-- KEYS: lock key (the fence counter, the lease pointer and the queue's keys are named from the
-- key prefix: they share its hash slot)
-- ARGV: 1 lease_id, 2 owner, 3 ttl_ms, 4 request_id ('' = none), 5 now_ms, 6 user key,
--       7, 8 first and end (exclusive) token of the fencing epoch this connection verified,
--       9 key prefix ('{ns}:'), 10 this replica; only from a waiter (absent = try once, never
--       queue): 11 waiter number, 12 the waiter's deadline (ms), 13 '1' when this waiter asked
--       before, 14 replica liveness TTL (ms)
-- Returns {1, lease} granted to the caller; {0, lease[, replica, waiter]} held by someone else
-- (the caller is queued if it waits; replica and waiter name the queued waiter the free key was
-- just handed to); {2, lease} this waiter was granted the key already (its delivery is under
-- way); {3} the counter is not in the verified epoch: nothing is granted, the caller verifies
-- Redis again. `lease` is the packed lease (lock_queue.lua).
local ns, origin, waiter = ARGV[9], ARGV[10], ARGV[11]
if waiter == '' then waiter = nil end

local function enqueue()
  if not waiter then return end
  local me = origin .. ':' .. waiter
  local queue_key, waiting_key = ns .. 'queue:' .. ARGV[6], ns .. 'waiting:' .. ARGV[6]
  local entry = cjson.encode({replica = origin, waiter = waiter, deadline = ARGV[12],
    lease_id = ARGV[1], owner = ARGV[2], ttl = ARGV[3], request_id = ARGV[4]})
  if redis.call('HSETNX', waiting_key, me, entry) == 1 then
    redis.call('RPUSH', queue_key, me)
    -- Queues of keys nobody touches again go away once their last waiter's wait is over.
    local keep = tonumber(ARGV[12]) - tonumber(ARGV[5]) + tonumber(ARGV[14])
    for _, queue_part in ipairs({queue_key, waiting_key}) do
      if redis.call('PTTL', queue_part) < keep then redis.call('PEXPIRE', queue_part, keep) end
    end
  end
  redis.call('SET', ns .. 'replica:' .. origin, '1', 'PX', ARGV[14], 'NX')
end

local cur = read_lock(KEYS[1])
if cur then
  local lease_id, tail = string.match(cur, '^([^\n]*)\n[^\n]*\n[^\n]*\n[^\n]*(\n.*)$')
  if waiter and ARGV[13] == '1' and lease_id == ARGV[1] then return {2, cur} end
  if ARGV[4] ~= '' and tail == '\n' .. #ARGV[4] .. '\n' .. ARGV[4] .. ARGV[2] then
    return {1, cur}
  end
  enqueue()
  return {0, cur}
end
-- Free: whoever queued first goes first (which may be the caller).
if redis.call('EXISTS', ns .. 'queue:' .. ARGV[6]) == 1 then
  local head = grant_to_head(ns, ARGV[6], ARGV[5], ARGV[7], ARGV[8], origin)
  if head then
    if head[1] == 'epoch' then return {3} end
    if waiter and head[1] == origin and head[2] == waiter then return {1, head[3]} end
    enqueue()
    return {0, head[3], head[1], head[2]}
  end
end
-- Nobody waits (any more): the caller's own entry, if an old one is left, goes.
if waiter then redis.call('HDEL', ns .. 'waiting:' .. ARGV[6], origin .. ':' .. waiter) end
local packed = grant_lease(ns, ARGV[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7],
  ARGV[8])
if not packed then return {3} end
return {1, packed}
