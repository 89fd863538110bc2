-- store_answer.lua: the first call of an idempotent request finished; replace its pending lease by
-- the answer, kept for ttl_ms. Only if the lease is still this claim's: a lease that expired and was
-- taken by another caller is not ours to overwrite.
-- KEYS: idempotency key. ARGV: owner, fingerprint, ttl_ms, status, content_type, body.
-- Reply: 1 stored, 0 not ours (or gone).
local h = redis.call('HMGET', KEYS[1], 'owner', 'fp')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'd', 'status', ARGV[4], 'type', ARGV[5], 'body', ARGV[6])
-- Same script, so the key is never seen with the lease's TTL and the answer's fields.
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[3])))
return 1
