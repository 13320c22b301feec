-- cluster_index.lua: on a Redis Cluster, one index set's follow-up of a write or a delete
-- (docs/cluster.md), in the set's own slot. No TTL is shortened.
--
-- KEYS[1] the index set
-- ARGV[1] 'add' or 'remove'    ARGV[2] the member
-- ARGV[3] in 'add' mode the record's TTL in ms (-1: none), which the set outlives by the
--         index margin; none in 'remove' mode (a removal changes no TTL)
-- Returns {1 when the member was added or removed else 0, the set's size afterwards}.
local key, mode, member = KEYS[1], ARGV[1], ARGV[2]
local present = read_checked('set', 'SISMEMBER', key, member) == 1
local changed = 0
if mode == 'add' then
  local ttl = tonumber(ARGV[3])
  local pttl = redis.call('PTTL', key)
  if not present then changed = redis.call('SADD', key, member) end
  if ttl ~= -1 then ttl = ttl + INDEX_MARGIN_MS end
  extend_ttl(key, pttl, ttl)
elseif present then
  changed = redis.call('SREM', key, member)
end
return {changed, redis.call('SCARD', key)}
