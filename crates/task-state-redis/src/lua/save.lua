-- save.lua: stores a whole record and puts the task in the indexes of its service and user.
-- A task that was saved before under another service or user leaves the old indexes, and
-- the old user leaves the service's user set when no task of theirs is left there.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] task id
-- ARGV[3] service              ARGV[4] user id
-- ARGV[5] the record JSON
-- ARGV[6] 'create' to store only when no record exists (optional)
-- Returns 'OK', or 'EXISTS' (nothing written) in 'create' mode when the record exists.
local key, meta = KEYS[1], KEYS[2]
local ttl, id, service, user_id, json = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local existing = check_type(key, 'string')
if ARGV[6] == 'create' and existing ~= 'none' then return 'EXISTS' end
check_type(meta, 'hash')
local indexes = index_keys(service, user_id)
for _, k in ipairs(indexes) do check_type(k, 'set') end

local old_service, old_user = unpack(redis.call('HMGET', meta, 'service', 'user_id'))
if (not old_service or not old_user) and existing == 'string' then
  -- No metadata: the old record says where it was.
  old_service, old_user = record_owner(key)
end

local moved = old_service and old_user and (old_service ~= service or old_user ~= user_id)
local old = nil
if moved then
  old = index_keys(old_service, old_user)
  for _, k in ipairs(old) do check_type(k, 'set') end
end

if moved then
  if old_service ~= service then redis.call('SREM', old[2], id) end
  redis.call('SREM', old[4], id)
  if old_user ~= user_id then redis.call('SREM', old[5], id) end
  if redis.call('SCARD', old[4]) == 0 then redis.call('SREM', old[3], old_user) end
end
redis.call('SET', key, json, 'EX', ttl)
redis.call('HSET', meta, 'service', service, 'user_id', user_id)
redis.call('HDEL', meta, 'layout')
redis.call('EXPIRE', meta, ttl + 60)
refresh_indexes(key, service, user_id, ttl)
return 'OK'
