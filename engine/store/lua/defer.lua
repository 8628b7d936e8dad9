-- Park a run's envelope until its upstreams finish (continuations).
-- KEYS: pending, remaining, then (run, waiters) per upstream.
-- ARGV: envelope, ttl, then an allow-failure flag per upstream.
-- Returns -1 if an upstream already failed (not allowed), 0 if every upstream
-- already completed (send it now), else how many it waits on.
local function final_type(raw)
  if not raw then
    return nil
  end
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc.run) ~= 'table' or type(doc.run.state) ~= 'table' then
    return nil
  end
  local state = doc.run.state
  if state.type == 'PENDING' and state.name == 'NotReady' then
    return 'NOTREADY'
  end
  if state.type == 'COMPLETED' or state.type == 'FAILED' or state.type == 'CRASHED'
      or state.type == 'CANCELLED' then
    return state.type
  end
  return nil
end

local upstreams = (#KEYS - 2) / 2
local joined = {}
for i = 1, upstreams do
  local allowed = ARGV[2 + i]
  local member = allowed .. '|' .. KEYS[2] .. '|' .. KEYS[1]
  local kind = final_type(redis.call('GET', KEYS[1 + 2 * i]))
  if kind == nil then
    redis.call('SADD', KEYS[2 + 2 * i], member)
    table.insert(joined, {KEYS[2 + 2 * i], member})
  elseif kind ~= 'COMPLETED' and allowed ~= '1' then
    for _, pair in ipairs(joined) do
      redis.call('SREM', pair[1], pair[2])
    end
    return -1
  end
end
if #joined == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], #joined, 'EX', ARGV[2])
return #joined
