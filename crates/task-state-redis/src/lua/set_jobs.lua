-- set_jobs.lua: replaces a task's scheduler job ids and stamps updated_at, in one atomic step.
-- The list is the record's "jobs" member, or "active_jobs" in records of DMS versions that
-- use that name; a record that has both gets the list in both, so that every reader sees it;
-- a record that has neither gets the member named by ARGV[5].
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] the job ids as a JSON array of strings
-- ARGV[5] the member name for a record that has neither: 'jobs' or 'active_jobs'
-- variant: SINGLE_NODE (lib/commit.lua) or, on a Redis Cluster, CLUSTER (lib/cluster.lua),
-- as scripts.rs builds this script.
-- Returns {'missing'} when the task does not exist, else {'applied', record}
-- ({'applied', ''} in 'ack' mode: lib/commit.lua).
local ttl_ms = checked_ttl(ARGV[1])
if ARGV[5] ~= 'jobs' and ARGV[5] ~= 'active_jobs' then
  fail('TSINVALID', 'jobs field', 'must be jobs or active_jobs')
end
local meta = variant.metadata_plan(KEYS[2])
local rec = read_record(KEYS[1], meta.layout)
if not rec then return {'missing'} end
local names = {}
for _, name in ipairs({'jobs', 'active_jobs'}) do
  if rec.by_name[name] then names[#names + 1] = name end
end
if #names == 0 then names[1] = ARGV[5] end
for _, name in ipairs(names) do set_member(rec, name, ARGV[4]) end
stamp(rec, ARGV[2])
return variant.applied(variant.commit(rec, meta, ttl_ms), ARGV[3])
