-- Removes the lapsed entries and returns the users that had no other.
local gone = {}
for _, conn in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now_ms())) do
  local user = redis.call('HGET', conns, conn)
  redis.call('ZREM', exp, conn)
  redis.call('HDEL', conns, conn)
  if user and redis.call('HINCRBY', counts, user, -1) <= 0 then
    redis.call('HDEL', counts, user)
    redis.call('HDEL', infos, user)
    gone[#gone + 1] = user
  end
end
return gone
