-- append_log.lua: appends log entries to a task and stamps updated_at, in one atomic step. A
-- record this project wrote last (its layout hint trusted) is not scanned.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4..] log entries as JSON strings
-- variant: SINGLE_NODE (lib/commit.lua) or, on a Redis Cluster, CLUSTER (lib/cluster.lua),
-- as scripts.rs builds this script.
-- Returns {'missing'} when the task does not exist, else {'applied', record}
-- ({'applied', ''} in 'ack' mode: lib/commit.lua).
local ttl_ms = checked_ttl(ARGV[1])
local meta = variant.metadata_plan(KEYS[2])
local entries = argv_from(4)
local rec, text = quick_append(KEYS[1], meta, ARGV[2], entries)
if not rec then
  -- The hint was checked already where a text was read: not again (a SHA1 of the record).
  local hint = meta.layout
  if text then hint = nil end
  rec = read_record(KEYS[1], hint, text)
  if not rec then return {'missing'} end
  stamp(rec, ARGV[2])
  append_entries(rec, entries)
end
return variant.applied(variant.commit(rec, meta, ttl_ms), ARGV[3])
