-- Release a held lease, announce it, and hand the key to the first live waiter of its queue.
-- KEYS: lease pointer, lock index.
-- ARGV: 1 lease_id, 2 channel, 3 origin (the announcing store instance, also this replica),
--       4 now_ms, 5, 6 the verified fencing epoch's first and end token, 7 key prefix
-- Returns false when the lease is not held; else {released lease (6 fields incl. key), hand-off}
-- where hand-off is 'none', 'epoch' (the counter left the verified epoch: nobody got the key)
-- or 'handed' followed by replica, waiter and the new lease's 5 fields.
local lock = redis.call('GET', KEYS[1])
if not lock then return false end
local cur = redis.call('HMGET', lock, 'lease_id', 'owner', 'token', 'acquired_at', 'expires_at', 'key')
if cur[1] ~= ARGV[1] then return false end
redis.call('DEL', lock, KEYS[1])
redis.call('ZREM', KEYS[2], cur[6])
redis.call('PUBLISH', ARGV[2], cjson.encode({
  key = cur[6], lease_id = cur[1], owner = cur[2], token = cur[3], acquired_at = cur[4],
  expires_at = cur[5], origin = ARGV[3], forced = false}))
local head = grant_to_head(ARGV[7], cur[6], ARGV[4], ARGV[5], ARGV[6], ARGV[3])
return with_hand_off({cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]}, head)
