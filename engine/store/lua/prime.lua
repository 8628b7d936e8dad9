-- A worker takes a message: read its runs and claim the ones nobody holds.
--
-- KEYS: the queue's progress mark, then (run, lease) per run.
-- ARGV: claimant, lease milliseconds, the message's send time, progress ttl.
-- Returns, per run, its JSON and the lease holder *before* this claim (nil
-- for none). The progress mark becomes the newest send time any worker has
-- started on the queue: a message sent before it has been taken off the queue.
local out = {}
for i = 2, #KEYS, 2 do
  local raw = redis.call('GET', KEYS[i])
  local holder = redis.call('GET', KEYS[i + 1])
  if raw and not holder then
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
  end
  table.insert(out, raw or false)
  table.insert(out, holder or false)
end
local mark = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[3]) > mark then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
end
return out
