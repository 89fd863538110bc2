-- admit.lua: every stateful check of one request, decided and committed atomically.
-- Checks run in order (nonce, flow, quota, idempotency); nothing is written unless all pass, except
-- that an idempotent REPLAY claims its nonce. Times come from the server clock so gateways agree.
--
-- KEYS: [nonce] flow... quota... [idempotency, cancellation]   (which are present: ARGV[1..5])
-- ARGV: has_nonce, nonce_ttl_ms, n_flow, n_quota, has_idem,
--       then limit, period_ms per flow take, then limit, period_ms per quota take,
--       then owner, fingerprint, lease_ms, lease when has_idem.
-- Reply: {outcome, retry_after_ms, remaining (-1: none)[, status, content_type, body]}

local ADMITTED, NONCE_USED, FLOW_LIMITED, QUOTA_EXHAUSTED = 0, 1, 2, 3
local PROCESSING, PARAMS_MISMATCH, CALLER_MISMATCH, REPLAY = 4, 5, 6, 7
local CANCELLED = 8

local time = redis.call('TIME')
-- Microseconds stay exact in a double until 2^53 (year 2255).
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)

local has_nonce, nonce_ttl = ARGV[1] == '1', math.max(1, tonumber(ARGV[2]))
local n_flow, n_quota, has_idem = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local k, a = 1, 6

local function int(x)
  -- tostring() would print 1.7e+15: integers go out as plain digits.
  return string.format('%.0f', x)
end

local nonce_key
if has_nonce then
  nonce_key = KEYS[k]
  k = k + 1
  if redis.call('EXISTS', nonce_key) == 1 then
    return {NONCE_USED, 0, -1}
  end
end

-- Flow: GCRA. The key holds the theoretical arrival time (TAT, us); a take moves it one emission
-- interval on and is allowed while TAT - burst * interval <= now.
local tat_of, flow_order, flow_wait = {}, {}, 0
for _ = 1, n_flow do
  local key, limit, period = KEYS[k], tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  k, a = k + 1, a + 2
  local interval = math.ceil(period * 1000 / limit)
  local tat = tat_of[key] or tonumber(redis.call('GET', key)) or now_us
  if tat_of[key] == nil then flow_order[#flow_order + 1] = key end
  tat = math.max(tat, now_us) + interval
  local wait = tat - interval * limit - now_us
  if wait > flow_wait then flow_wait = wait end
  tat_of[key] = tat
end
if flow_wait > 0 then
  return {FLOW_LIMITED, math.ceil(flow_wait / 1000), -1}
end

-- Quota: fixed windows aligned to the epoch. The window index is known only here (server time), and a
-- script may touch only the keys it is given, so one key per quota holds "window:used".
local quota_of, quota_order, quota_wait, remaining = {}, {}, 0, -1
for _ = 1, n_quota do
  local key, limit, period = KEYS[k], tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  k, a = k + 1, a + 2
  local q = quota_of[key]
  if q == nil then
    local window = math.floor(now_ms / period)
    q = {window = window, used = 0, fresh = true, ends = (window + 1) * period}
    local stored = redis.call('GET', key)
    if stored then
      local w, used = string.match(stored, '^(%d+):(%d+)$')
      if tonumber(w) == window then q.used, q.fresh = tonumber(used), false end
    end
    quota_of[key] = q
    quota_order[#quota_order + 1] = key
  end
  if q.used >= limit then
    quota_wait = math.max(quota_wait, q.ends - now_ms)
  else
    q.used = q.used + 1
    if remaining < 0 or limit - q.used < remaining then remaining = limit - q.used end
  end
end
if quota_wait > 0 then
  return {QUOTA_EXHAUSTED, quota_wait, -1}
end

local idem_key, owner, fingerprint, lease_ms, lease
if has_idem then
  idem_key, owner, fingerprint = KEYS[k], ARGV[a], ARGV[a + 1]
  lease_ms, lease = math.max(1, tonumber(ARGV[a + 2])), ARGV[a + 3]
  -- release.lua ran first for this very claim: its gateway gave up on this call long ago.
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then return {CANCELLED, 0, -1} end
  local h = redis.call('HMGET', idem_key, 'state', 'owner', 'fp', 'status', 'type', 'body')
  if h[1] then
    if h[2] ~= owner then return {CALLER_MISMATCH, 0, -1} end
    if h[3] ~= fingerprint then return {PARAMS_MISMATCH, 0, -1} end
    if h[1] == 'p' then return {PROCESSING, 0, -1} end
    if nonce_key then redis.call('SET', nonce_key, '1', 'PX', nonce_ttl) end
    return {REPLAY, 0, -1, tonumber(h[4]), h[5], h[6]}
  end
end

-- Everything passed: commit. Each key is created with its TTL in the same command (SET ... PX), or,
-- for the lease hash, in the same script, so no key is ever seen without one.
if nonce_key then redis.call('SET', nonce_key, '1', 'PX', nonce_ttl) end
for _, key in ipairs(flow_order) do
  local tat = tat_of[key]
  redis.call('SET', key, int(tat), 'PX', math.max(1, math.ceil((tat - now_us) / 1000)))
end
for _, key in ipairs(quota_order) do
  local q = quota_of[key]
  local value = int(q.window) .. ':' .. int(q.used)
  if q.fresh then
    redis.call('SET', key, value, 'PX', q.ends - now_ms)
  else
    redis.call('SET', key, value, 'KEEPTTL')
  end
end
if idem_key then
  redis.call('HSET', idem_key, 'state', 'p', 'owner', owner, 'fp', fingerprint, 'lease', lease)
  redis.call('PEXPIRE', idem_key, lease_ms)
end
return {ADMITTED, 0, remaining}
