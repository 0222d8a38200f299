-- Shared by every script. now_ms reads the Redis clock, so that nodes with
-- skewed clocks agree on what lapsed.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
