-- Release a held lease, announce it, and hand the key to the first live waiter of its queue.
-- KEYS: lease pointer.
-- ARGV: 1 lease_id, 2 origin (this replica), 3 now_ms, 4, 5 the verified fencing epoch's first
--       and end token, 6 key prefix
-- Returns false when the lease is not held; else {released lease (packed), its key, hand-off}
-- where hand-off is 'none', 'epoch' (the counter left the verified epoch: nobody got the key)
-- or 'handed' followed by replica, waiter and the new lease (packed).
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = read_lock(lock)
if not cur or string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n' then return false end
redis.call('DEL', lock, KEYS[1])
local ns = ARGV[6]
local key = string.sub(lock, #ns + 6)
announce_release(ns, key, cur, ARGV[2], ARGV[3], false)
local head = grant_to_head(ns, key, ARGV[3], ARGV[4], ARGV[5], ARGV[2])
return with_hand_off({cur, key}, head)
