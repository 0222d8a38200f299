-- ARGV: 'count' or 'members'.
-- Returns the number of live users, or a flat list of user id, user_info
-- (nil when absent) for each live user.
local now = now_ms()
if ARGV[1] == 'count' then
  return live_users(now)
end
local per = lapsed_per_user(now)
local out = {}
local all = redis.call('HGETALL', counts)
for i = 1, #all, 2 do
  local user = all[i]
  if (per[user] or 0) < tonumber(all[i + 1]) then
    out[#out + 1] = user
    out[#out + 1] = redis.call('HGET', infos, user)
  end
end
return out
