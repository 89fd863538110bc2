-- store_answer.lua: the first call of an idempotent request finished; replace its pending lease by
-- the answer, kept for ttl_ms. Only if the lease is still this claim's (its lease id): a lease that
-- expired and was taken again, even by the same caller retrying, is not ours to settle.
-- KEYS: idempotency key. ARGV: lease, ttl_ms, status, content_type, body.
-- Reply: 1 stored, 0 not ours (or gone).
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'd', 'status', ARGV[3], 'type', ARGV[4], 'body', ARGV[5])
-- Same script, so the key is never seen with the lease's TTL and the answer's fields.
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2])))
return 1
