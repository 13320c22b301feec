-- set_jobs.lua: replaces a task's scheduler job ids (the "jobs" member, or "active_jobs"
-- in records of DMS versions that use that name).
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] the job ids as a JSON array of strings
-- Returns {'0'} when the task does not exist, else {'1', record or ''}.
local rec = load_record(KEYS[1], KEYS[2])
if not rec then return {'0'} end
local name = 'jobs'
if not rec.m.jobs and rec.m.active_jobs then name = 'active_jobs' end
set_member(rec, name, ARGV[4])
set_member(rec, 'updated_at', ARGV[2])
commit(rec, tonumber(ARGV[1]))
return reply(rec, ARGV[3])
