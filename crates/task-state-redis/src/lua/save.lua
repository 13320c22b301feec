-- save.lua: stores a whole record and puts the task in the indexes of its service and user.
-- A task that was saved before under another service or user leaves the old indexes, and
-- the old user leaves the service's user set when no task of theirs is left there. No TTL is
-- shortened: a record that had a longer TTL keeps it.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] task id
-- ARGV[3] service              ARGV[4] user id
-- ARGV[5] the record JSON
-- ARGV[6] 'create' to store only when no record exists, else 'save'
-- ARGV[7] the layout hint for the record (lib/hint.lua), which the client made from where
--         its encoder placed the members (optional)
-- Returns 'OK', or 'EXISTS' (nothing written) in 'create' mode when the record exists (an
-- empty string, which the Python package reads as no record, does not count).
local key, meta_key = KEYS[1], KEYS[2]
local ttl_ms = checked_ttl(ARGV[1])
local id, service, user_id, json = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local length = read_checked('string', 'STRLEN', key)
if ARGV[6] == 'create' and length > 0 then return 'EXISTS' end

local meta = metadata_plan(meta_key)
local old_service, old_user = meta.service, meta.user_id
if not (old_service and old_user) and length > 0 then
  -- No metadata: the old record says where it was.
  old_service, old_user = record_owner(redis.call('GET', key))
end
local move = move_plan(id, old_service, old_user, service, user_id)
local indexes = index_plan(id, service, user_id)
local ttl = longer_ttl(redis.call('PTTL', key), ttl_ms)

write_record(key, json, ttl)
write_indexes(indexes, ttl)
write_move(move)
write_metadata(meta, service, user_id, ttl, saved_hint(json, ARGV[7], service, user_id))
return 'OK'
