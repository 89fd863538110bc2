-- refund_flow.lua: give back flow takes that admit.lua committed for a request refused afterwards
-- (Redis Cluster only, where flow keys live in other slots than the request's scope). GCRA makes a
-- refund exact: move the TAT back one emission interval; a TAT no longer ahead of now is no state.
-- KEYS: flow keys. ARGV: limit, period_ms per key. Reply: number of keys refunded.
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local refunded = 0
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    local limit, period = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
    tat = tat - math.ceil(period * 1000 / limit)
    if tat > now_us then
      redis.call('SET', key, string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now_us) / 1000)))
    else
      redis.call('DEL', key)
    end
    refunded = refunded + 1
  end
end
return refunded
