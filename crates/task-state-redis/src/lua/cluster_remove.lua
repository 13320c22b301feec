-- cluster_remove.lua: on a Redis Cluster, deletes a task's record, the first step of a
-- delete (docs/cluster.md); the client then cleans the indexes and deletes the metadata.
--
-- KEYS[1] task:{id}
-- Returns {1 when a record was deleted else 0, its service or '', its user or ''}.
local key = KEYS[1]
read_checked('string', 'STRLEN', key)
if redis.call('EXISTS', key) == 0 then return {0, '', ''} end
local service, user_id = record_owner(redis.call('GET', key))
redis.call('DEL', key)
return {1, service or '', user_id or ''}
