-- ARGV: connection id, user id, user_info, '1' if there is a user_info,
-- max members (0: no limit), TTL ms.
-- Returns 1 if the user is new, 0 if it was there already, -1 if the
-- channel is full.
local conn, user, max, ttl = ARGV[1], ARGV[2], tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local owner = redis.call('HGET', conns, conn)
if owner and owner ~= user then
  return redis.error_reply('presence: connection already joined as another user')
end
local result = 0
if not owner then
  -- A user whose entries all lapsed is still a member until Expire
  -- announces its removal, so it is not new.
  if tonumber(redis.call('HGET', counts, user) or '0') == 0 then
    if max > 0 and live_users(now) >= max then
      return -1
    end
    if ARGV[4] == '1' then
      redis.call('HSET', infos, user, ARGV[3])
    end
    result = 1
  end
  redis.call('HSET', conns, conn, user)
  redis.call('HINCRBY', counts, user, 1)
end
redis.call('ZADD', exp, now + ttl, conn)
keep_for(ttl)
return result
