-- KEYS: this node's counts HASH (channel -> count), the app's node ZSET
-- (node id -> expiry ms).
-- ARGV: channel, delta, node id.
-- Changes the node's count of the channel, deleting it at zero, and
-- returns 1 if the node is live in the ZSET, else 0 (the caller then
-- heartbeats at once).
local counts, nodes = KEYS[1], KEYS[2]
if redis.call('HINCRBY', counts, ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', counts, ARGV[1])
end
local until_ms = redis.call('ZSCORE', nodes, ARGV[3])
if until_ms and tonumber(until_ms) > now_ms() then
  return 1
end
return 0
