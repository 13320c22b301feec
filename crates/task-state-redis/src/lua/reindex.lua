-- reindex.lua: puts an existing task back into every index it belongs to and rewrites its
-- metadata hash, for the consistency repair. The owner comes from the record itself. Index
-- TTLs are raised to the record's remaining TTL where they are shorter; nothing else changes.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] task id
-- Returns the number of index members and metadata fields added or corrected (0 when the
-- task does not exist).
local key, meta_key, id = KEYS[1], KEYS[2], ARGV[1]
local text = read_checked('string', 'GET', key)
if not text or text == '' then return 0 end
local service, user_id = record_owner(text)
if not service or not user_id then fail('TSDECODE', key, 'no service or user_id') end
local meta = metadata_plan(meta_key)
local indexes = index_plan(id, service, user_id)
local ttl = redis.call('PTTL', key)

local fixed = 0
for _, name in ipairs(INDEX_ORDER) do
  if not indexes[name].present then fixed = fixed + 1 end
end
if meta.service ~= service or meta.user_id ~= user_id then fixed = fixed + 1 end
write_indexes(indexes, ttl)
write_metadata(meta, service, user_id, ttl)
return fixed
