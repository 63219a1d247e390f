-- Grant a lock if free and nobody queued first; otherwise queue the caller (when it waits).
-- KEYS: lock hash, fence counter, lease pointer (the queue's keys are named from
-- the key prefix, like the lease pointers reached through the lock)
-- ARGV: 1 lease_id, 2 owner, 3 ttl_ms, 4 request_id ('' = none), 5 now_ms, 6 user key,
--       7, 8 first and end (exclusive) token of the fencing epoch this connection verified,
--       9 key prefix ('{ns}:'), 10 this replica, 11 waiter number ('' = try once, never
--       queue), 12 the waiter's deadline (ms), 13 '1' when this waiter asked before,
--       14 replica liveness TTL (ms)
-- Returns {1, lease...} granted to the caller; {0, lease...[, replica, waiter]} held by someone
-- else (the caller is queued if it waits; replica and waiter name the queued waiter the free key
-- was just handed to); {2, lease...} this waiter was granted the key already (its delivery is
-- under way); {3} the counter is not in the verified epoch: nothing is granted, the caller
-- verifies Redis again.
local ns, origin = ARGV[9], ARGV[10]
local queue_key, waiting_key = ns .. 'queue:' .. ARGV[6], ns .. 'waiting:' .. ARGV[6]
local me = ARGV[11] ~= '' and (origin .. ':' .. ARGV[11]) or nil

local function enqueue()
  if not me then return end
  local entry = cjson.encode({replica = origin, waiter = ARGV[11], deadline = ARGV[12],
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

local cur = redis.call('HMGET', KEYS[1], 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'request_id')
if cur[1] then
  if me and ARGV[13] == '1' and cur[1] == ARGV[1] then
    return {2, cur[1], cur[2], cur[3], cur[4], cur[5]}
  end
  if ARGV[4] ~= '' and cur[6] == ARGV[4] and cur[2] == ARGV[2] then
    return {1, cur[1], cur[2], cur[3], cur[4], cur[5]}
  end
  enqueue()
  return {0, cur[1], cur[2], cur[3], cur[4], cur[5]}
end
-- Free: whoever queued first goes first (which may be the caller).
if redis.call('EXISTS', queue_key) == 1 then
  local head = grant_to_head(ns, ARGV[6], ARGV[5], ARGV[7], ARGV[8], origin)
  if head then
    if head[1] == 'epoch' then return {3} end
    if me and head[1] == origin and head[2] == ARGV[11] then
      return {1, head[3], head[4], head[5], head[6], head[7]}
    end
    enqueue()
    return {0, head[3], head[4], head[5], head[6], head[7], head[1], head[2]}
  end
end
-- Nobody waits (any more): the caller's own entry, if an old one is left, goes.
if me then redis.call('HDEL', waiting_key, me) end
local lease = grant_lease(ns, ARGV[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7], ARGV[8])
if not lease then return {3} end
return {1, lease[1], lease[2], lease[3], lease[4], lease[5]}
