-- append_log.lua: appends log entries to a task in one atomic step. On a record this project
-- wrote last, only the head and the tail of the record are read and rewritten, so the cost
-- does not grow with the number of log entries.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4..] log entries as JSON strings
-- Returns {'0'} when the task does not exist, else {'1', record or ''}.
local entries = {unpack(ARGV, 4)}
if append_tail_only(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], entries) then
  return reply({key = KEYS[1]}, ARGV[3])
end
local rec = load_record(KEYS[1], KEYS[2])
if not rec then return {'0'} end
set_member(rec, 'updated_at', ARGV[2])
append_logs(rec, entries)
commit(rec, tonumber(ARGV[1]))
return reply(rec, ARGV[3])
