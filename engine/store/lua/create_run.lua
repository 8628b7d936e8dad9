-- Create one run atomically: the run (SET NX), its first state, its index entry.
-- KEYS: run, history, index.
-- ARGV: run JSON, state JSON or "", "zset"|"list", score (zset only), run id.
-- Returns 1 if created, 0 if the id already exists.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[2])
end
if ARGV[3] == 'zset' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
else
  redis.call('RPUSH', KEYS[3], ARGV[5])
end
return 1
