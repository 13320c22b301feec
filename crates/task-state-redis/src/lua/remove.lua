-- remove.lua: deletes a task (record, metadata, index entries) or, in 'expired' mode, cleans
-- the index entries of a task whose record has expired. The user leaves the service's user
-- set when no task of theirs is left there. Where the metadata hash is gone too, the record
-- (if any) says which indexes to clean; without either only index:tasks is cleaned.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] task id              ARGV[2] 'delete' or 'expired'
-- Returns {removed, metadata found}: removed is 1 when a key or index entry was removed
-- (in 'expired' mode -1 when the record still exists, and nothing is done).
local key, meta, id, mode = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local existing = check_type(key, 'string')
check_type(meta, 'hash')
if mode == 'expired' and existing ~= 'none' then return {-1, 1} end

local service, user_id = unpack(redis.call('HMGET', meta, 'service', 'user_id'))
local had_meta = 1
if not service or not user_id then
  had_meta = 0
  service, user_id = nil, nil
  if existing == 'string' then
    service, user_id = record_owner(key)
  end
end

local indexes = nil
check_type('index:tasks', 'set')
if service and user_id then
  indexes = index_keys(service, user_id)
  for _, k in ipairs(indexes) do check_type(k, 'set') end
end

local removed = redis.call('DEL', key, meta)
removed = removed + redis.call('SREM', 'index:tasks', id)
if indexes then
  removed = removed + redis.call('SREM', indexes[2], id)
  removed = removed + redis.call('SREM', indexes[4], id)
  removed = removed + redis.call('SREM', indexes[5], id)
  if redis.call('SCARD', indexes[4]) == 0 then redis.call('SREM', indexes[3], user_id) end
end
if removed > 0 then removed = 1 end
return {removed, had_meta}
