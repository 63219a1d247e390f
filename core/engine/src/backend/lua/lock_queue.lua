-- Prepended to the lock scripts that grant or free a key: the waiter queue kept in Redis, one
-- per key and shared by every replica, so waiters are served in arrival order whichever replica
-- they called (after lock_lease.lua).
-- Queue of a key: list <ns>queue:<key> of waiter ids ('<replica>:<n>') in arrival order, and
-- hash <ns>waiting:<key> id -> entry (JSON: replica, waiter, deadline, lease_id, owner, ttl,
-- request_id). An id without an entry is a waiter that left: skipped when reached. A replica is
-- alive while <ns>replica:<replica> exists (its store refreshes it with a TTL).
-- Replicas with lock-change subscribers: sorted set <ns>lock-watchers, replica -> until when
-- (ms) it asked for release announcements (each refreshes its entry while it has subscribers).

-- Store a lease of `key` with the next fencing token. Returns the packed lease, its token and
-- its expiry, or nil when the counter is not in the verified epoch [first, stop) (Redis lost it
-- or another server moved it on): nothing is granted then.
-- Tokens stay below 2^53 (epochs below 8192), so Lua's doubles hold them exactly.
local function grant_lease(ns, key, lease_id, owner, ttl, request_id, now, first, stop)
  local token = redis.call('INCR', ns .. 'fence')
  if token < tonumber(first) or token >= tonumber(stop) then return nil end
  token = string.format('%d', token)
  local lock = ns .. 'lock:' .. key
  local expires = string.format('%d', tonumber(now) + tonumber(ttl))
  local packed = pack_lease(lease_id, token, now, expires, request_id, owner)
  redis.call('SET', lock, packed, 'PX', ttl)
  redis.call('SET', ns .. 'lease:' .. lease_id, lock, 'PX', ttl)
  return packed, token, expires
end

-- Give the free `key` to the first waiter still waiting: its deadline not passed and its replica
-- alive (dead or expired entries are dropped on the way). Returns nil when nobody waits,
-- {'epoch'} when the fencing counter is not in the verified epoch (the waiter stays first), or
-- {replica, waiter, packed lease}. The grant is published to the waiter's replica on
-- <ns>lock-granted:<replica>, unless that replica is `origin`, which delivers it from this reply.
local function grant_to_head(ns, key, now, first, stop, origin)
  local queue = ns .. 'queue:' .. key
  local id = redis.call('LPOP', queue)
  if not id then return nil end
  local waiting = ns .. 'waiting:' .. key
  while id do
    local raw = redis.call('HGET', waiting, id)
    if raw then
      redis.call('HDEL', waiting, id)
      local w = cjson.decode(raw)
      if tonumber(w.deadline) >= tonumber(now)
        and redis.call('EXISTS', ns .. 'replica:' .. w.replica) == 1 then
        local packed, token, expires = grant_lease(ns, key, w.lease_id, w.owner, w.ttl,
          w.request_id, now, first, stop)
        if not packed then
          redis.call('HSET', waiting, id, raw)
          redis.call('LPUSH', queue, id)
          return {'epoch'}
        end
        if w.replica ~= origin then
          redis.call('PUBLISH', ns .. 'lock-granted:' .. w.replica, cjson.encode({
            waiter = w.waiter, key = key, lease_id = w.lease_id, owner = w.owner,
            token = token, acquired_at = now, expires_at = expires}))
        end
        return {w.replica, w.waiter, packed}
      end
    end
    id = redis.call('LPOP', queue)
  end
  return nil
end

-- A release's reply: `reply` (what ended) followed by what happened to the key: 'none' (nobody
-- waits), 'epoch' (the counter left the verified epoch: nobody got it), or 'handed' and
-- grant_to_head's {replica, waiter, packed lease}.
local function with_hand_off(reply, head)
  if not head then
    reply[#reply + 1] = 'none'
  elseif head[1] == 'epoch' then
    reply[#reply + 1] = 'epoch'
  else
    reply[#reply + 1] = 'handed'
    reply[#reply + 1] = head[1]
    reply[#reply + 1] = head[2]
    reply[#reply + 1] = head[3]
  end
  return reply
end

-- Announce that the lease `packed` of `key` ended, on <ns>lock-released:<replica>, to each
-- replica with lock-change subscribers except `origin` (which reported it itself). Nobody
-- watching costs one ZRANGEBYSCORE and no message.
local function announce_release(ns, key, packed, origin, now, forced)
  local notice
  for _, replica in ipairs(redis.call('ZRANGEBYSCORE', ns .. 'lock-watchers', now, '+inf')) do
    if replica ~= origin then
      if not notice then
        local lease = unpack_lease(packed)
        notice = cjson.encode({key = key, lease_id = lease[1], owner = lease[2],
          token = lease[3], acquired_at = lease[4], expires_at = lease[5], origin = origin,
          forced = forced})
      end
      redis.call('PUBLISH', ns .. 'lock-released:' .. replica, notice)
    end
  end
end
