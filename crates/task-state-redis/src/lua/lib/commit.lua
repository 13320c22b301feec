-- lib/commit.lua: the writes of a task, planned by reads that check every key first.
--
-- A plan reads the type, membership and TTL of every key a write will touch; a key of the
-- wrong type raises TSWRONGTYPE there, before anything is written. The writes come after
-- all plans, the record first: a server over its memory limit refuses a script's first write
-- that needs memory (SET), and lets the rest of a script that has written run to its end, so
-- that a refused script has written nothing.

-- The task's five index sets (see indexes_of), each with `present` (the member is there)
-- and `pttl` (PTTL before the write).
local function index_plan(id, service, user_id)
  local indexes = indexes_of(id, service, user_id)
  for _, name in ipairs(INDEX_ORDER) do
    local index = indexes[name]
    index.present = read_checked('set', 'SISMEMBER', index.key, index.member) == 1
    index.pttl = redis.call('PTTL', index.key)
  end
  return indexes
end

-- The metadata hash: its service, user_id and (from older versions) layout fields, and PTTL.
local function metadata_plan(key)
  local fields = read_checked('hash', 'HMGET', key, 'service', 'user_id', 'layout')
  return {
    key = key, service = fields[1] or nil, user_id = fields[2] or nil,
    layout = fields[3] or nil, pttl = redis.call('PTTL', key),
  }
end

-- What leaving the indexes of an old owner takes, when a task moves from (old_service,
-- old_user) to (service, user_id); nil when it does not move.
local function move_plan(id, old_service, old_user, service, user_id)
  if not (old_service and old_user) or (old_service == service and old_user == user_id) then
    return nil
  end
  local old = indexes_of(id, old_service, old_user)
  for _, name in ipairs({'service', 'service_users', 'service_user', 'user'}) do
    read_checked('set', 'SCARD', old[name].key)
  end
  return {old = old, service_changed = old_service ~= service, user_changed = old_user ~= user_id}
end

local function write_record(key, text, ttl)
  if ttl == -1 then
    redis.call('SET', key, text, 'KEEPTTL')
  else
    redis.call('SET', key, text, 'PX', ttl)
  end
end

-- Puts the task into each index it is missing from, and gives each index at least the
-- record's TTL (ttl; -1: the record never expires), so that an index outlives its records.
local function write_indexes(indexes, ttl)
  for _, name in ipairs(INDEX_ORDER) do
    local index = indexes[name]
    if not index.present then redis.call('SADD', index.key, index.member) end
    extend_ttl(index.key, index.pttl, ttl)
  end
end

-- Takes the task out of its old owner's indexes, and the old user out of the service's user
-- set when no task of theirs is left in that service.
local function write_move(move)
  if not move then return end
  local old, id = move.old, move.old.tasks.member
  if move.service_changed then redis.call('SREM', old.service.key, id) end
  redis.call('SREM', old.service_user.key, id)
  if move.user_changed then redis.call('SREM', old.user.key, id) end
  if redis.call('SCARD', old.service_user.key) == 0 then
    redis.call('SREM', old.service_users.key, old.service_users.member)
  end
end

-- Writes the owner into the metadata hash where it differs, drops the layout field older
-- versions kept there, and lets the hash outlive the record by the grace period.
local function write_metadata(meta, service, user_id, ttl)
  if meta.service ~= service or meta.user_id ~= user_id then
    redis.call('HSET', meta.key, 'service', service, 'user_id', user_id)
  end
  if meta.layout then redis.call('HDEL', meta.key, 'layout') end
  local target = -1
  if ttl ~= -1 then target = ttl + METADATA_GRACE_MS end
  extend_ttl(meta.key, meta.pttl, target)
end

-- Writes an edited record (read_record, then edits) with its metadata (at meta_key) and
-- indexes; ttl_ms from checked_ttl. A task whose metadata names another owner than the
-- record leaves that owner's indexes. Returns the new text.
local function commit(rec, meta_key, ttl_ms)
  -- The owner's names become keys: a record whose names could not be keys is not edited.
  if not (valid_name(rec.service) and valid_name(rec.user_id)) then
    fail('TSDECODE', rec.key, 'service or user_id cannot be part of a key')
  end
  local id = task_id_of(rec.key)
  local meta = metadata_plan(meta_key)
  local move = move_plan(id, meta.service, meta.user_id, rec.service, rec.user_id)
  local indexes = index_plan(id, rec.service, rec.user_id)
  local ttl = longer_ttl(redis.call('PTTL', rec.key), ttl_ms)
  local text = edited_text(rec)
  write_record(rec.key, text, ttl)
  write_indexes(indexes, ttl)
  write_move(move)
  write_metadata(meta, rec.service, rec.user_id, ttl)
  return text
end

-- The reply of an applied mutation: {'applied', the record} in 'record' mode, else
-- {'applied', ''}.
local function applied(text, mode)
  if mode == 'record' then return {'applied', text} end
  return {'applied', ''}
end

-- ARGV[first..] as a list. unpack would fail past about 8,000 values (Lua's stack limit).
local function argv_from(first)
  local list = {}
  for i = first, #ARGV do list[#list + 1] = ARGV[i] end
  return list
end
