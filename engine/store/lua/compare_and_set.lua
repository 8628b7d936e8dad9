-- Compare-and-set one run, with everything that must change in the same step.
--
-- KEYS: run, history, events stream ("" for none), lease, waiters, active flow runs.
-- ARGV:
--   1 expected run JSON        2 new run JSON           3 state JSON
--   4 ttl: >0 expire, -1 persist, 0 leave
--   5 task run id to announce on the events stream ("" for none)
--   6 lease: an owner to set it to, "" to drop it, "=" to leave it
--   7 lease milliseconds
--   8 release waiters: '1' completed, '0' other final state, '' no release
--   9 active flow runs: '+' add, '-' remove, '' leave
--  10 '1': only if the run holds no lease (a sweeper crashing a lapsed run)
-- Returns 1 (or 1 and the envelopes of released runs) when written, -1 when the
-- run is missing, 0 when ARGV[10] found a lease, else the run JSON there now.
local current = redis.call('GET', KEYS[1])
if not current then
  return -1
end
if current ~= ARGV[1] then
  return current
end
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
elseif ttl < 0 then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'task_run_id', ARGV[5], 'state', ARGV[3])
end
if ARGV[6] == '' then
  redis.call('DEL', KEYS[4])
elseif ARGV[6] ~= '=' then
  redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[7])
end
if ARGV[9] == '+' then
  redis.call('SADD', KEYS[6], ARGV[11])
elseif ARGV[9] == '-' then
  redis.call('SREM', KEYS[6], ARGV[11])
end

-- Continuations: release the waiters of a run that just became final. Each
-- member of the waiters set is "<allowed>|<remaining key>|<pending key>".
local released = {}
if ARGV[8] ~= '' then
  local members = redis.call('SMEMBERS', KEYS[5])
  for _, member in ipairs(members) do
    local allowed = string.sub(member, 1, 1)
    local sep = string.find(member, '|', 3, true)
    local remaining_key = string.sub(member, 3, sep - 1)
    local pending_key = string.sub(member, sep + 1)
    if ARGV[8] == '1' or allowed == '1' then
      if redis.call('DECR', remaining_key) == 0 then
        local envelope = redis.call('GET', pending_key)
        if envelope then
          table.insert(released, envelope)
        end
        redis.call('DEL', pending_key, remaining_key)
      end
    end
  end
  redis.call('DEL', KEYS[5])
end
if #released > 0 then
  return {1, unpack(released)}
end
return 1
