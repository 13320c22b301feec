-- set_status.lua: sets a task's status, optionally only from given statuses, and appends
-- log entries, in one atomic step.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] the new status as a JSON string
-- ARGV[5] allowed current statuses, space separated ('' allows any)
-- ARGV[6..] log entries as JSON strings
-- variant: SINGLE_NODE (lib/commit.lua) or, on a Redis Cluster, CLUSTER (lib/cluster.lua),
-- as scripts.rs builds this script.
-- Returns {'missing'} when the task does not exist, {'conflict', current status} when the
-- current status is not allowed (nothing written), else {'applied', record}
-- ({'applied', ''} in 'ack' mode: lib/commit.lua).
local ttl_ms = checked_ttl(ARGV[1])
local meta = variant.metadata_plan(KEYS[2])
local entries = argv_from(6)
-- A record whose hint is trusted is not scanned (lib/edit.lua); else it is read whole.
local rec, text, trusted = quick_status(KEYS[1], meta)
local current
if rec then
  current = rec.status
else
  rec = read_record(KEYS[1], nil, text, trusted)
  if not rec then return {'missing'} end
  current = rec.by_name.status.text
end
if ARGV[5] ~= '' then
  local allowed = false
  for name in string.gmatch(ARGV[5], '%S+') do
    if name == current then allowed = true end
  end
  if not allowed then return {'conflict', current} end
end
if rec.hint then
  quick_status_edits(rec, ARGV[4], ARGV[2], entries)
else
  set_member(rec, 'status', ARGV[4])
  stamp(rec, ARGV[2])
  append_entries(rec, entries)
end
return variant.applied(variant.commit(rec, meta, ttl_ms), ARGV[3])
