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

-- The owner (service, user_id) that the metadata hash (metadata_plan) names, or nil, nil
-- when it names none whose names could be part of a key: a hash another writer left with
-- such names builds no key.
local function metadata_owner(meta)
  local service, user_id = meta.service, meta.user_id
  if service and user_id and valid_name(service) and valid_name(user_id) then
    return service, user_id
  end
  return nil, nil
end

-- The owner that the stored record text s names, or nil, nil (see record_owner): read from
-- the metadata's layout hint where that holds for s (its SHA1 costs less than a scan), else
-- from the text itself.
local function stored_owner(s, meta)
  local hint = trusted_hint(s, meta.layout)
  if hint and valid_name(hint.service) and valid_name(hint.user_id) then
    return hint.service, hint.user_id
  end
  return record_owner(s)
end

-- The owners among pairs {service, user_id} (a pair with a nil name is no owner), each once.
local function distinct_owners(pairs)
  local owners, seen = {}, {}
  for _, pair in ipairs(pairs) do
    -- Names hold no ':', so the pair joined with one names one owner.
    local name = pair[1] and pair[2] and pair[1] .. ':' .. pair[2]
    if name and not seen[name] then
      seen[name] = true
      owners[#owners + 1] = pair
    end
  end
  return owners
end

-- The moves (move_plan) out of the indexes of each old owner (pairs as distinct_owners takes
-- them) towards (service, user_id).
local function move_plans(id, old_owners, service, user_id)
  local plans = {}
  for _, old in ipairs(distinct_owners(old_owners)) do
    local plan = move_plan(id, old[1], old[2], service, user_id)
    if plan then plans[#plans + 1] = plan end
  end
  return plans
end

local function write_record(key, text, ttl)
  if ttl == -1 then
    redis.call('SET', key, text, 'KEEPTTL')
  else
    redis.call('SET', key, text, 'PX', ttl)
  end
end

-- Puts the task into each index it is missing from, and gives each index at least the
-- record's TTL (ttl; -1: the record never expires) and a margin, so that an index outlives
-- its records. An index whose TTL already covers that (the previous write gave it headroom)
-- is not written: only its membership and PTTL were read.
local function write_indexes(indexes, ttl)
  local need, headroom = ttl, refresh_headroom(ttl)
  if ttl ~= -1 then need = ttl + INDEX_MARGIN_MS end
  for _, name in ipairs(INDEX_ORDER) do
    local index = indexes[name]
    if not index.present then redis.call('SADD', index.key, index.member) end
    refresh_ttl(index.key, index.pttl, need, headroom)
  end
end

-- Takes the task out of its old owner's indexes, and the old user out of the service's user
-- set when no task of theirs is left in that service.
local function write_move(move)
  local old, id = move.old, move.old.tasks.member
  if move.service_changed then redis.call('SREM', old.service.key, id) end
  redis.call('SREM', old.service_user.key, id)
  if move.user_changed then redis.call('SREM', old.user.key, id) end
  if redis.call('SCARD', old.service_user.key) == 0 then
    redis.call('SREM', old.service_users.key, old.service_users.member)
  end
end

local function write_moves(moves)
  for _, move in ipairs(moves) do write_move(move) end
end

-- Writes the owner into the metadata hash where it differs, and the layout hint (or drops a
-- hint that no longer holds), and lets the hash outlive the record by the grace period.
local function write_metadata(meta, service, user_id, ttl, layout)
  if meta.service ~= service or meta.user_id ~= user_id then
    redis.call('HSET', meta.key, 'service', service, 'user_id', user_id)
  end
  if layout then
    redis.call('HSET', meta.key, 'layout', layout)
  elseif meta.layout then
    redis.call('HDEL', meta.key, 'layout')
  end
  local need = -1
  if ttl ~= -1 then need = ttl + METADATA_GRACE_MS end
  -- A hash the script created has no TTL yet: PTTL before the writes was -2.
  refresh_ttl(meta.key, meta.pttl, need, refresh_headroom(ttl))
end

-- Writes an edited record (read_record or quick_append, then edits) with its metadata (meta,
-- from metadata_plan) and indexes; ttl_ms from checked_ttl. A task whose metadata names
-- another owner than the record leaves that owner's indexes (an edit does not change the
-- record's owner, so the record's own indexes are the ones it is put in). Returns the new
-- text.
local function commit(rec, meta, ttl_ms)
  -- The owner's names become keys: a record whose names could not be keys is not edited.
  -- Names from a trusted hint were checked by the write that left it.
  if not rec.hint and not (valid_name(rec.service) and valid_name(rec.user_id)) then
    fail('TSDECODE', rec.key, 'service or user_id cannot be part of a key')
  end
  local id = task_id_of(rec.key)
  local moves = move_plans(id, {{metadata_owner(meta)}}, rec.service, rec.user_id)
  local indexes = index_plan(id, rec.service, rec.user_id)
  local ttl = longer_ttl(redis.call('PTTL', rec.key), ttl_ms)
  local text = edited_text(rec)
  write_record(rec.key, text, ttl)
  write_indexes(indexes, ttl)
  write_moves(moves)
  write_metadata(meta, rec.service, rec.user_id, ttl, next_hint(rec, text))
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

-- The SINGLE_NODE variant of the editing scripts (lib/cluster.lua has the CLUSTER one): the
-- metadata hash read whole (metadata_plan, lib/hint.lua), then the record, its metadata and
-- its indexes written together. scripts.rs gives each editing script one variant or the
-- other as its local `variant`.
local SINGLE_NODE = {metadata_plan = metadata_plan, commit = commit, applied = applied}
