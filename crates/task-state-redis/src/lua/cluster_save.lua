-- cluster_save.lua: on a Redis Cluster, stores a whole record in its own slot; the client
-- then writes the metadata hash and the indexes (docs/cluster.md). No TTL is shortened.
--
-- KEYS[1] task:{id}
-- ARGV[1] ttl in seconds       ARGV[2] the record JSON
-- ARGV[3] 'create' to store only when no record exists (optional)
-- Returns {'EXISTS'} (nothing written) in 'create' mode when the record exists, else
-- {'OK', the old record's service or '', its user or '', the record's TTL in ms (-1: none)}.
local key = KEYS[1]
local ttl_ms = checked_ttl(ARGV[1])
local length = read_checked('string', 'STRLEN', key)
if ARGV[3] == 'create' and length > 0 then return {'EXISTS'} end
local old_service, old_user = nil, nil
if length > 0 then old_service, old_user = record_owner(redis.call('GET', key)) end
local ttl = longer_ttl(redis.call('PTTL', key), ttl_ms)
write_record(key, ARGV[2], ttl)
return {'OK', old_service or '', old_user or '', ttl}
