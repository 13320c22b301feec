-- save.lua: stores a whole record and puts the task in the indexes of its service and user.
-- A task that was saved before under another service or user leaves the old indexes (those of
-- the owner the metadata names and of the one the old record names, where they differ), and
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
-- The task was indexed under the owner its metadata names and under the one its old record
-- names: another writer may have stored a record of another owner and left the metadata as
-- it was (the Python package cleans by the record). It leaves both owners' indexes.
local recorded = {}
if length > 0 then recorded = {stored_owner(redis.call('GET', key), meta)} end
local moves = move_plans(id, {{metadata_owner(meta)}, recorded}, service, user_id)
local indexes = index_plan(id, service, user_id)
local ttl = longer_ttl(redis.call('PTTL', key), ttl_ms)

write_record(key, json, ttl)
write_indexes(indexes, ttl)
write_moves(moves)
write_metadata(meta, service, user_id, ttl, saved_hint(json, ARGV[7], service, user_id))
return 'OK'
