-- KEYS: the app's node ZSET (node id -> expiry ms).
-- ARGV: the key prefix of the nodes' counts HASHes (the node id follows),
-- 'one' or 'prefix', then the channel or the channel-name prefix.
-- Removes lapsed nodes with their counts, then returns a flat list of
-- channel, summed count over the live nodes.
-- The counts keys share the app's hash tag with KEYS[1], so they live in
-- the same cluster slot.
local nodes, key_prefix, mode, name = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  redis.call('DEL', key_prefix .. node)
end
redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now)
local sums = {}
for _, node in ipairs(redis.call('ZRANGE', nodes, 0, -1)) do
  local key = key_prefix .. node
  if mode == 'one' then
    local n = redis.call('HGET', key, name)
    if n then
      sums[name] = (sums[name] or 0) + tonumber(n)
    end
  else
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, #name) == name then
        sums[all[i]] = (sums[all[i]] or 0) + tonumber(all[i + 1])
      end
    end
  end
end
local out = {}
for channel, n in pairs(sums) do
  if n > 0 then
    out[#out + 1] = channel
    out[#out + 1] = n
  end
end
return out
