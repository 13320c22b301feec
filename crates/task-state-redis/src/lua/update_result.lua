-- update_result.lua: sets the given fields of a task's result, keeps its other members, and
-- stamps updated_at, in one atomic step.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] pod_status as a JSON string, or '' to keep it
-- ARGV[5] launcher_output as a JSON string, or '' to keep it
-- variant: SINGLE_NODE (lib/commit.lua) or, on a Redis Cluster, CLUSTER (lib/cluster.lua),
-- as scripts.rs builds this script.
-- Returns {'missing'} when the task does not exist, else {'applied', record}
-- ({'applied', ''} in 'ack' mode: lib/commit.lua).
local ttl_ms = checked_ttl(ARGV[1])
local meta = variant.metadata_plan(KEYS[2])
local rec = read_record(KEYS[1], meta.layout)
if not rec then return {'missing'} end
local function given(v)
  if v == '' then return nil end
  return v
end
set_result(rec, given(ARGV[4]), given(ARGV[5]))
stamp(rec, ARGV[2])
return variant.applied(variant.commit(rec, meta, ttl_ms), ARGV[3])
