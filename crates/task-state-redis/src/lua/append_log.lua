-- append_log.lua: appends log entries to a task and stamps updated_at, in one atomic step.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4..] log entries as JSON strings
-- Returns {'missing'} when the task does not exist, else {'applied', record or ''}.
local ttl_ms = checked_ttl(ARGV[1])
local rec = read_record(KEYS[1])
if not rec then return {'missing'} end
set_member(rec, 'updated_at', ARGV[2])
append_entries(rec, argv_from(4))
return applied(commit(rec, KEYS[2], ttl_ms), ARGV[3])
