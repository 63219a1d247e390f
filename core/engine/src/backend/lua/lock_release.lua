-- Release a held lease, announce it, and hand the key to the first live waiter of its queue.
-- KEYS: lease pointer.
-- ARGV: 1 lease_id, 2 origin (this replica), 3 now_ms, 4, 5 the verified fencing epoch's first
--       and end token, 6 key prefix
-- Returns false when the lease is not held; else {released lease (6 fields incl. key), hand-off}
-- where hand-off is 'none', 'epoch' (the counter left the verified epoch: nobody got the key)
-- or 'handed' followed by replica, waiter and the new lease's 5 fields.
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = redis.call('HMGET', lock, 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'key')
if cur[1] ~= ARGV[1] then return false end
redis.call('DEL', lock, KEYS[1])
announce_release(ARGV[6], cur[6], cur, ARGV[2], ARGV[3], false)
local head = grant_to_head(ARGV[6], cur[6], ARGV[3], ARGV[4], ARGV[5], ARGV[2])
return with_hand_off({cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]}, head)
