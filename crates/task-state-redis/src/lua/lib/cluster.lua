-- lib/cluster.lua: the CLUSTER variant of the editing scripts, for a Redis Cluster, where one
-- script may touch the keys of one slot only (docs/cluster.md). Its pieces touch the record
-- alone, where lib/commit.lua's SINGLE_NODE ones also write the metadata hash and the
-- indexes; the client then writes those, each in its own slot, with the owner and the TTL
-- that the reply names. scripts.rs gives an editing script one variant or the other.

-- What cluster_commit wrote, for cluster_applied: {service, user_id, ttl}.
local cluster_written = nil

-- The metadata hash is in another slot: nothing is read from it (so no layout hint is used,
-- and every record is checked whole).
local function cluster_metadata_plan(key)
  return {key = key}
end

-- Writes the edited record, keeping a longer TTL; the owner and the TTL go to the reply.
local function cluster_commit(rec, meta, ttl_ms)
  if not (valid_name(rec.service) and valid_name(rec.user_id)) then
    fail('TSDECODE', rec.key, 'service or user_id cannot be part of a key')
  end
  local ttl = longer_ttl(redis.call('PTTL', rec.key), ttl_ms)
  local text = edited_text(rec)
  write_record(rec.key, text, ttl)
  cluster_written = {service = rec.service, user_id = rec.user_id, ttl = ttl}
  return text
end

-- {'applied', record or '', service, user_id, the record's TTL in ms (-1: none)}.
local function cluster_applied(text, mode)
  local reply = {'applied', ''}
  if mode == 'record' then reply[2] = text end
  local written = cluster_written
  reply[3], reply[4], reply[5] = written.service, written.user_id, written.ttl
  return reply
end

local CLUSTER = {
  metadata_plan = cluster_metadata_plan, commit = cluster_commit, applied = cluster_applied,
}
