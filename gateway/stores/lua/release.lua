-- release.lua: a claim's call will not finish (it failed, or its gateway gave up on its admit); its
-- lease must not stand. A pending lease of this claim (its lease id) is dropped so a retry can run; a
-- stored answer, or another claim's lease, stays. With no lease at all, this claim's admit may still
-- be queued in a stalled Redis: a cancellation key makes admit.lua refuse it and commit nothing, for
-- as long as the lease would have lasted.
-- KEYS: idempotency key, cancellation key. ARGV: lease, lease_ms.
-- Reply: 1 released, 2 cancelled ahead of its admit, 0 left alone.
local h = redis.call('HMGET', KEYS[1], 'state', 'lease')
if not h[1] then
  redis.call('SET', KEYS[2], '1', 'PX', math.max(1, tonumber(ARGV[2])))
  return 2
end
if h[1] ~= 'p' or h[2] ~= ARGV[1] then
  return 0
end
return redis.call('DEL', KEYS[1])
