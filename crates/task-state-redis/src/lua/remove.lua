-- remove.lua: deletes a task (record, metadata, index entries) or, in 'expired' mode, cleans
-- the index entries of a task whose record has expired. The user leaves the service's user
-- set when no task of theirs is left there; the sets left non-empty keep at least the TTL of
-- ARGV[3], as the Python package refreshes them. Where the metadata hash is gone too, the
-- record (if any) says which indexes to clean; without either only index:tasks is cleaned.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] task id              ARGV[2] 'delete' or 'expired'
-- ARGV[3] ttl in seconds
-- Returns {removed, metadata found}: removed is 1 when a key or index entry was removed
-- (in 'expired' mode -1 when the record still exists, and nothing is done).
local key, meta_key, id, mode = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local ttl_ms = checked_ttl(ARGV[3])
read_checked('string', 'STRLEN', key)
local exists = redis.call('EXISTS', key) == 1
if mode == 'expired' and exists then return {-1, 1} end

local meta = metadata_plan(meta_key)
local service, user_id = meta.service, meta.user_id
local had_meta = 1
if not (service and user_id) then
  had_meta = 0
  service, user_id = nil, nil
  if exists then service, user_id = record_owner(redis.call('GET', key)) end
end

-- The sets that hold the task: index:tasks only, or all five.
local sets = {{key = TASK_INDEX, member = id}}
local indexes = nil
if service and user_id then
  indexes = indexes_of(id, service, user_id)
  sets = {}
  for _, name in ipairs(INDEX_ORDER) do sets[#sets + 1] = indexes[name] end
end
for _, set in ipairs(sets) do read_checked('set', 'SCARD', set.key) end

local removed = redis.call('DEL', key, meta_key)
for _, set in ipairs(sets) do
  if set ~= (indexes and indexes.service_users) then
    removed = removed + redis.call('SREM', set.key, set.member)
  end
end
if indexes and redis.call('SCARD', indexes.service_user.key) == 0 then
  redis.call('SREM', indexes.service_users.key, user_id)
end
for _, set in ipairs(sets) do
  local pttl = redis.call('PTTL', set.key)
  if pttl ~= -2 then extend_ttl(set.key, pttl, ttl_ms) end
end
if removed > 0 then removed = 1 end
return {removed, had_meta}
