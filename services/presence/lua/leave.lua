-- ARGV: connection id, user id.
-- Returns 1 if that was the user's last entry, else 0.
local conn, user = ARGV[1], ARGV[2]
if redis.call('HGET', conns, conn) ~= user then
  return 0
end
redis.call('ZREM', exp, conn)
redis.call('HDEL', conns, conn)
if redis.call('HINCRBY', counts, user, -1) > 0 then
  return 0
end
redis.call('HDEL', counts, user)
redis.call('HDEL', infos, user)
return 1
