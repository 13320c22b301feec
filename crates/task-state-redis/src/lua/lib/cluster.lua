-- lib/cluster.lua: for a Redis Cluster, where one script may touch the keys of one slot only
-- (docs/cluster.md). Joined after commit.lua into the cluster builds of the editing scripts,
-- it replaces the three functions that reach past the record with ones that touch the
-- record alone; the client then writes the metadata hash and the indexes, each in its own
-- slot, with the owner and the TTL that the reply names.

local cluster_written = nil

-- The metadata hash is in another slot: nothing is read from it (so no layout hint is used,
-- and every record is checked whole).
local function metadata_plan(key)
  return {key = key}
end

-- Writes the edited record, keeping a longer TTL; the owner and the TTL go to the reply.
local function commit(rec, meta, ttl_ms)
  if not (valid_name(rec.service) and valid_name(rec.user_id)) then
    fail('TSDECODE', rec.key, 'service or user_id cannot be part of a key')
  end
  local ttl = longer_ttl(redis.call('PTTL', rec.key), ttl_ms)
  local text = edited_text(rec)
  write_record(rec.key, text, ttl)
  cluster_written = {rec.service, rec.user_id, ttl}
  return text
end

-- {'applied', record or '', service, user_id, the record's TTL in ms (-1: none)}.
local function applied(text, mode)
  local reply = {'applied', ''}
  if mode == 'record' then reply[2] = text end
  reply[3], reply[4], reply[5] = cluster_written[1], cluster_written[2], cluster_written[3]
  return reply
end
