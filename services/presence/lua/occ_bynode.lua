-- KEYS: the app's node ZSET (node id -> expiry ms).
-- ARGV: the key prefix of the nodes' counts HASHes (the node id follows),
-- then the name.
-- Returns a flat list of node id, that node's count of the name, for every
-- live node with a count. Lapsed nodes are left out (occ_read removes them).
local nodes, key_prefix, name = KEYS[1], ARGV[1], ARGV[2]
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '(' .. now_ms(), '+inf')) do
  local n = redis.call('HGET', key_prefix .. node, name)
  if n and tonumber(n) > 0 then
    out[#out + 1] = node
    out[#out + 1] = tonumber(n)
  end
end
return out
