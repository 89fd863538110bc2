-- release.lua: the first call of an idempotent request failed; drop its pending lease so a retry can
-- run. Only a pending lease of this claim: a stored answer, or another caller's lease, stays.
-- KEYS: idempotency key. ARGV: owner, fingerprint. Reply: 1 released, 0 not ours (or gone).
local h = redis.call('HMGET', KEYS[1], 'state', 'owner', 'fp')
if h[1] ~= 'p' or h[2] ~= ARGV[1] or h[3] ~= ARGV[2] then
  return 0
end
return redis.call('DEL', KEYS[1])
