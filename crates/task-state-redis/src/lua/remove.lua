-- remove.lua: deletes a task (record, metadata, index entries) or, in 'expired' mode, cleans
-- the index entries of a task whose record has expired. The user leaves the service's user
-- set when no task of theirs is left there; no TTL is read or changed (nothing left needs a
-- longer life). The indexes cleaned are those of the owner the metadata hash names and of
-- the one the record (if any) names; without either only index:tasks is cleaned.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] task id              ARGV[2] 'delete' or 'expired'
-- Returns {removed, metadata found}: removed is 1 when a key or index entry was removed
-- (in 'expired' mode -1 when the record still exists, and nothing is done).
local key, meta_key, id, mode = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
read_checked('string', 'STRLEN', key)
local exists = redis.call('EXISTS', key) == 1
if mode == 'expired' and exists then return {-1, 1} end

local meta = metadata_plan(meta_key)
-- The owners whose indexes hold the task: the one the metadata names and the one the record
-- names, where they differ (another writer may have stored a record of another owner and
-- left the metadata as it was; the Python package cleans by the record). Names that could
-- not be part of a key name no owner.
local named = {metadata_owner(meta)}
local had_meta = named[1] and 1 or 0
local recorded = {}
if exists then recorded = {stored_owner(redis.call('GET', key), meta)} end
local owners = {}
for _, owner in ipairs(distinct_owners({named, recorded})) do
  owners[#owners + 1] = indexes_of(id, owner[1], owner[2])
end

-- The sets that hold the task: index:tasks, and the other four of each owner.
local sets = {{key = TASK_INDEX, member = id}}
for _, indexes in ipairs(owners) do
  for _, name in ipairs(INDEX_ORDER) do
    if name ~= 'tasks' then sets[#sets + 1] = indexes[name] end
  end
end
for _, set in ipairs(sets) do read_checked('set', 'SCARD', set.key) end

local removed = redis.call('DEL', key, meta_key)
local users_sets = {}
for _, indexes in ipairs(owners) do users_sets[indexes.service_users] = true end
for _, set in ipairs(sets) do
  if not users_sets[set] then removed = removed + redis.call('SREM', set.key, set.member) end
end
for _, indexes in ipairs(owners) do
  if redis.call('SCARD', indexes.service_user.key) == 0 then
    redis.call('SREM', indexes.service_users.key, indexes.service_users.member)
  end
end
if removed > 0 then removed = 1 end
return {removed, had_meta}
