-- ARGV: TTL ms, then connection ids.
-- Renews the entries that still exist; an entry already expired is not
-- brought back, since its removal may have been announced.
local ttl = tonumber(ARGV[1])
local until_ms = now_ms() + ttl
for i = 2, #ARGV do
  redis.call('ZADD', exp, 'XX', until_ms, ARGV[i])
end
keep_for(ttl)
return 0
