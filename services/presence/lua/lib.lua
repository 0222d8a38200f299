-- Shared by every presence script, after clock.lua. The four keys of one (app, channel):
--   exp    ZSET  connection id -> expiry (ms, Redis clock)
--   conns  HASH  connection id -> user id
--   infos  HASH  user id -> user_info JSON (absent when the user has none)
--   counts HASH  user id -> number of entries
-- An entry is live while its expiry is after now. Only Leave and Expire
-- remove entries, so a user is announced as removed by whichever call
-- removes its last entry, exactly once.
local exp, conns, infos, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- lapsed_per_user counts each user's lapsed entries.
local function lapsed_per_user(now)
  local per = {}
  for _, conn in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now)) do
    local user = redis.call('HGET', conns, conn)
    if user then
      per[user] = (per[user] or 0) + 1
    end
  end
  return per
end

-- is_live reports whether user has an entry that has not lapsed.
local function is_live(user, per)
  return (per[user] or 0) < tonumber(redis.call('HGET', counts, user) or '0')
end

-- live_users counts the users with at least one live entry.
local function live_users(now)
  local n = redis.call('HLEN', counts)
  local per = lapsed_per_user(now)
  for user in pairs(per) do
    if not is_live(user, per) then
      n = n - 1
    end
  end
  return n
end

-- keep_for lets an abandoned channel's keys vanish some time after its
-- last heartbeat, leaving nodes a full TTL to Expire its entries first.
local function keep_for(ttl)
  for _, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, 2 * ttl)
  end
end
