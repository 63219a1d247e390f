-- Prepended to every lock script: the lease encoding.
-- A lease: string <ns>lock:<key> = the packed lease (see pack_lease), with the lease's TTL, and
-- its pointer <ns>lease:<lease_id> = '<ns>lock:<key>' with the same TTL (release and renew come
-- by lease id). Servers before the packed lease kept a hash there instead; read_lock reads both.

-- One string per lease: 'lease_id\ntoken\nacquired_at\nexpires_at\n<#request_id>\n' followed
-- by request_id and owner (the length makes the two user strings unambiguous; lease ids and
-- numbers hold no newline). The server parses it from the replies as it is.
local function pack_lease(lease_id, token, acquired, expires, request_id, owner)
  return lease_id .. '\n' .. token .. '\n' .. acquired .. '\n' .. expires .. '\n' ..
    #request_id .. '\n' .. request_id .. owner
end

-- The packed lease held on the lock key `lock`, or false. A hash there is a lease written by a
-- server before the packed encoding (an upgrade with leases held): read and packed alike.
local function read_lock(lock)
  local packed = redis.pcall('GET', lock)
  if type(packed) == 'table' and packed.err then
    local h = redis.call('HMGET', lock, 'lease_id', 'owner', 'token', 'acquired_at',
      'expires_at', 'request_id')
    if not h[1] then return false end
    return pack_lease(h[1], h[3], h[4], h[5], h[6] or '', h[2])
  end
  return packed
end

-- A packed lease's fields {lease_id, owner, token, acquired_at, expires_at}.
local function unpack_lease(packed)
  local lease_id, token, acquired, expires, len, rest =
    string.match(packed, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(%d+)\n(.*)$')
  return {lease_id, string.sub(rest, tonumber(len) + 1), token, acquired, expires}
end
