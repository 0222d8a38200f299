-- ARGV: TTL ms, then per connection: id, user id, user_info, '1' if there
-- is a user_info.
-- Renews each entry. An entry the store lost (a restart without
-- persistence, or an expiry after the node was cut off) is recorded again,
-- since its connection is still open; returns the users that thereby became
-- members again, so their return can be announced.
local ttl = tonumber(ARGV[1])
local until_ms = now_ms() + ttl
local back = {}
for i = 2, #ARGV, 4 do
  local conn, user = ARGV[i], ARGV[i + 1]
  if not redis.call('HGET', conns, conn) then
    if tonumber(redis.call('HGET', counts, user) or '0') == 0 then
      if ARGV[i + 3] == '1' then
        redis.call('HSET', infos, user, ARGV[i + 2])
      end
      back[#back + 1] = user
    end
    redis.call('HSET', conns, conn, user)
    redis.call('HINCRBY', counts, user, 1)
  end
  redis.call('ZADD', exp, until_ms, conn)
end
keep_for(ttl)
return back
