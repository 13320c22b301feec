-- cluster_metadata.lua: on a Redis Cluster, the metadata hash's follow-up of a write
-- (docs/cluster.md): names the task's owner and outlives the record by the grace period,
-- never shortening its TTL; a TTL that falls short gets the headroom of lib/layout.lua, so
-- that the edits that follow find it long enough and leave the hash alone.
--
-- KEYS[1] task:{id}:metadata
-- ARGV[1] service              ARGV[2] user id
-- ARGV[3] the record's TTL in ms (-1: the record never expires)
-- Returns {the service it named before or '', the user it named before or ''}.
local key, service, user_id = KEYS[1], ARGV[1], ARGV[2]
local ttl = tonumber(ARGV[3])
local fields = read_checked('hash', 'HMGET', key, 'service', 'user_id')
local pttl = redis.call('PTTL', key)
local old_service, old_user = fields[1] or '', fields[2] or ''
if old_service ~= service or old_user ~= user_id then
  redis.call('HSET', key, 'service', service, 'user_id', user_id)
end
local need = -1
if ttl ~= -1 then need = ttl + METADATA_GRACE_MS end
refresh_ttl(key, pttl, need, refresh_headroom(ttl))
return {old_service, old_user}
