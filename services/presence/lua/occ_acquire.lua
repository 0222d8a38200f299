-- KEYS: the app's node ZSET (node id -> expiry ms), this node's counts
-- HASH (name -> count).
-- ARGV: the key prefix of the nodes' counts HASHes (the node id follows),
-- name, limit (<= 0: none), node id, TTL ms, '1' if the node's memory holds
-- counts in the app.
-- Removes lapsed nodes with their counts, as occ_read does, then adds one
-- to this node's count of name if the sum over the live nodes stays within
-- the limit. Returns 1 if it added, 0 if the limit was reached, and -1,
-- changing nothing, if the node's counts are missing though its memory
-- holds some (Redis lost them, or the node lapsed and was purged): judged
-- without them the limit could be overshot, so the caller writes them back
-- and tries again.
-- The counts keys share the app's hash tag with KEYS[1], so they live in
-- the same cluster slot.
local nodes, counts = KEYS[1], KEYS[2]
local key_prefix, name, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local node, ttl, held = ARGV[4], tonumber(ARGV[5]), ARGV[6] == '1'
local now = now_ms()
for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  redis.call('DEL', key_prefix .. lapsed)
end
redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now)
if held and redis.call('EXISTS', counts) == 0 then
  return -1
end
local live = redis.call('ZSCORE', nodes, node)
if limit > 0 then
  local sum = 0
  if not live then
    -- The live nodes' sum leaves this node's own counts out.
    sum = tonumber(redis.call('HGET', counts, name) or '0')
  end
  for _, other in ipairs(redis.call('ZRANGE', nodes, 0, -1)) do
    sum = sum + tonumber(redis.call('HGET', key_prefix .. other, name) or '0')
  end
  if sum >= limit then
    return 0
  end
end
redis.call('HINCRBY', counts, name, 1)
if not live then
  -- Listed at once, in this same step, so that other nodes' Acquires
  -- count this one now rather than after its heartbeat.
  redis.call('ZADD', nodes, now + ttl, node)
end
redis.call('PEXPIRE', nodes, 2 * ttl)
redis.call('PEXPIRE', counts, 2 * ttl)
return 1
