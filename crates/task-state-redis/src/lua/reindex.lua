-- reindex.lua: puts an existing task back into every index it belongs to and rewrites its
-- metadata hash, for the consistency repair. The owner comes from the record itself. Index
-- TTLs are raised to the record's remaining TTL where they are shorter; nothing else changes.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] task id
-- Returns the number of index members and metadata fields added or corrected (0 when the
-- task does not exist).
local key, meta, id = KEYS[1], KEYS[2], ARGV[1]
if check_type(key, 'string') == 'none' then return 0 end
check_type(meta, 'hash')
local service, user_id = record_owner(key)
if not service or not user_id then fail('TSDECODE', key, 'no service or user_id') end
local indexes = index_keys(service, user_id)
for _, k in ipairs(indexes) do check_type(k, 'set') end

local ttl = redis.call('TTL', key)
local fixed = 0
for i, k in ipairs(indexes) do
  local member = id
  if i == 3 then member = user_id end
  fixed = fixed + redis.call('SADD', k, member)
  local t = redis.call('TTL', k)
  if ttl > 0 and (t == -1 or t < ttl) then redis.call('EXPIRE', k, ttl) end
end
local old = redis.call('HMGET', meta, 'service', 'user_id')
if old[1] ~= service or old[2] ~= user_id then
  redis.call('HSET', meta, 'service', service, 'user_id', user_id)
  redis.call('HDEL', meta, 'layout')
  fixed = fixed + 1
end
if ttl > 0 then redis.call('EXPIRE', meta, ttl + 60) end
return fixed
