-- admit.lua: every stateful check of one request, decided and committed atomically.
-- Checks run in order (nonce and its history, flow, quota, idempotency); nothing is written unless all
-- pass, except that an idempotent REPLAY claims its nonce, and that a missing history marker is
-- created whatever the outcome. Times come from the server clock so gateways agree.
--
-- KEYS: [nonce, history] flow... quota... [idempotency, cancellation]   (present as ARGV says)
-- ARGV: has_nonce, nonce_ttl_ms, timestamp_ms, known_run_id, grace_ms, settle_ms, history_ttl_ms,
--       n_flow, n_quota, has_idem,
--       then limit, period_ms per flow take, then limit, period_ms per quota take,
--       then owner, fingerprint, lease_ms, lease when has_idem.
-- Reply: {outcome, retry_after_ms, remaining (-1: none), run_id[, status, content_type, body]}
--        run_id: this server's, when the caller does not know one yet (known_run_id ''), else ''.

local ADMITTED, NONCE_USED, FLOW_LIMITED, QUOTA_EXHAUSTED = 0, 1, 2, 3
local PROCESSING, PARAMS_MISMATCH, CALLER_MISMATCH, REPLAY = 4, 5, 6, 7
local NONCE_UNPROVEN, HISTORY_STARTING, CANCELLED = 8, 9, 10

local time = redis.call('TIME')
-- Microseconds stay exact in a double until 2^53 (year 2255).
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)

local has_nonce, nonce_ttl = ARGV[1] == '1', math.max(1, tonumber(ARGV[2]))
local n_flow, n_quota, has_idem = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10] == '1'
local k, a = 1, 11

-- Which server life this is (INFO's run_id is new at every start): once per gateway store.
local known, server = ARGV[4], ''
if known == '' then server = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '' end

local function int(x)
  -- tostring() would print 1.7e+15: integers go out as plain digits.
  return string.format('%.0f', x)
end

-- Where this scope's nonce history starts, when it has no marker: the data set began when this
-- server started (a restart without persistence empties it; with persistence the marker survives).
-- INFO gives that start to the second: it lies in [started, started + 1).
local function history_start(grace)
  local info = redis.call('INFO', 'server')
  local uptime = tonumber(string.match(info, 'uptime_in_seconds:(%d+)'))
  local clock = tonumber(string.match(info, 'server_time_usec:(%d+)') or now_us)
  local started = math.floor(clock / 1000000) - uptime
  if known ~= '' and known ~= string.match(info, 'run_id:(%x+)') then
    -- The calling gateway used an earlier life of this server (or, in a cluster, another node):
    -- nonces it saw admitted may be lost, one of them perhaps moments before the start. Timestamps
    -- have whole seconds, so only one signed in the next second or later is surely from after it.
    return (started + 1) * 1000
  end
  -- Nothing says data was lost (a new scope, a first start, an expired marker): a little grace for
  -- clients whose clocks lag.
  return started * 1000 - grace
end

local nonce_key
if has_nonce then
  nonce_key = KEYS[k]
  local history_key = KEYS[k + 1]
  k = k + 2
  if redis.call('EXISTS', nonce_key) == 1 then
    return {NONCE_USED, 0, -1, server}
  end
  local since = tonumber(redis.call('GET', history_key))
  if not since then
    since = history_start(tonumber(ARGV[5]))
    -- Created whatever this ticket's outcome: the first gateway to look fixes it for every gateway.
    redis.call('SET', history_key, int(since), 'PX', math.max(1, tonumber(ARGV[7])))
  end
  if tonumber(ARGV[3]) < since then
    if now_ms < since + tonumber(ARGV[6]) then return {HISTORY_STARTING, 0, -1, server} end
    return {NONCE_UNPROVEN, 0, -1, server}
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
  return {FLOW_LIMITED, math.ceil(flow_wait / 1000), -1, server}
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
  return {QUOTA_EXHAUSTED, quota_wait, -1, server}
end

local idem_key, owner, fingerprint, lease_ms, lease
if has_idem then
  idem_key, owner, fingerprint = KEYS[k], ARGV[a], ARGV[a + 1]
  lease_ms, lease = math.max(1, tonumber(ARGV[a + 2])), ARGV[a + 3]
  -- release.lua ran first for this very claim: its gateway gave up on this call long ago.
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then return {CANCELLED, 0, -1, server} end
  local h = redis.call('HMGET', idem_key, 'state', 'owner', 'fp', 'status', 'type', 'body')
  if h[1] then
    if h[2] ~= owner then return {CALLER_MISMATCH, 0, -1, server} end
    if h[3] ~= fingerprint then return {PARAMS_MISMATCH, 0, -1, server} end
    if h[1] == 'p' then return {PROCESSING, 0, -1, server} end
    if nonce_key then redis.call('SET', nonce_key, '1', 'PX', nonce_ttl) end
    return {REPLAY, 0, -1, server, tonumber(h[4]), h[5], h[6]}
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
return {ADMITTED, 0, remaining, server}
