-- renew.lua: the call of an idempotent request still runs; its pending lease lasts lease_ms more from
-- now, so a retry keeps being told it is processing. Only while the lease is pending and still this
-- claim's (its lease id): a lease that expired and was taken again, a released one, or an answer
-- already stored is not ours to extend.
-- KEYS: idempotency key. ARGV: lease, lease_ms.
-- Reply: 1 renewed, 0 not ours (or gone, or answered).
local h = redis.call('HMGET', KEYS[1], 'state', 'lease')
if h[1] ~= 'p' or h[2] ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2])))
return 1
