-- Hand a free key to the first live waiter of its queue (after a release whose own hand-off
-- found the fencing counter outside the verified epoch). KEYS: lock key, queue list.
-- ARGV: 1 user key, 2 now_ms, 3, 4 the verified epoch's first and end token, 5 key prefix,
--       6 this replica
-- Returns 'none' (held, or nobody waits), 'epoch', or {replica, waiter, packed lease}.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 0 then return 'none' end
local head = grant_to_head(ARGV[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6])
if not head then return 'none' end
if head[1] == 'epoch' then return 'epoch' end
return head
