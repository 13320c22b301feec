-- set_status.lua: sets a task's status, optionally only from given statuses, and appends
-- log entries, in one atomic step.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] the new status as a JSON string
-- ARGV[5] allowed current statuses, space separated ('' allows any)
-- ARGV[6..] log entries as JSON strings
-- Returns {'0'} when the task does not exist, {'2', current status} when the current status
-- is not allowed (nothing written), else {'1', record or ''}.
local rec = load_record(KEYS[1], KEYS[2])
if not rec then return {'0'} end
if ARGV[5] ~= '' then
  local current = member_string(rec, 'status')
  if not current then fail('TSDECODE', rec.key, 'no status') end
  local allowed = false
  for name in string.gmatch(ARGV[5], '%S+') do
    if name == current then allowed = true end
  end
  if not allowed then return {'2', current} end
end
set_member(rec, 'status', ARGV[4])
set_member(rec, 'updated_at', ARGV[2])
append_logs(rec, {unpack(ARGV, 6)})
commit(rec, tonumber(ARGV[1]))
return reply(rec, ARGV[3])
