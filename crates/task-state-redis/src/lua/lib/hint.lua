-- lib/hint.lua: the layout hint, and the metadata hash that keeps it.
--
-- After each edit, the metadata hash remembers (field "layout") where updated_at's value and
-- the last log entry stand in the record as that edit left it, with the record's owner and a
-- SHA1 over the record and all of that. A later script trusts the hint only when the SHA1
-- matches the record it reads: then the record is byte for byte the one a script checked and
-- wrote, so the text checks (the costly part of a scan) and, for a log append, the scan itself
-- can be skipped. A record another writer changed in any byte, or a hint another writer
-- touched, fails the SHA1 and is scanned and checked whole. Older versions kept a hint
-- without a SHA1 ("<length>,<position>..."), which is never trusted.

local HINT_SEP = '\031'

-- The hint for text s: updated_at's value at u_from..u_to, the last log entry ending at last,
-- and (version 3) the status's value at s_from..s_to.
local function hint_for(s, u_from, u_to, last, s_from, s_to, service, user_id)
  -- %d: Lua would write each number with %.14g, which costs several times more.
  local rest = string.format('%d\031%d\031%d\031%d\031%d\031', u_from, u_to, last, s_from, s_to)
    .. service .. HINT_SEP .. user_id
  return 'v3' .. HINT_SEP .. redis.sha1hex(redis.sha1hex(s) .. HINT_SEP .. rest) .. HINT_SEP .. rest
end

-- The fields of a hint of version ('2' or '3') after its SHA1, as {u_from, u_to, last,
-- s_from, s_to, service, user_id} (no s_from and s_to in one of version 2, as earlier
-- versions wrote); nil when they do not read so.
local function hint_fields(version, rest)
  local u_from, u_to, last, s_from, s_to, service, user_id
  if version == '3' then
    u_from, u_to, last, s_from, s_to, service, user_id = match(rest,
      '^(%d+)\031(%d+)\031(%d+)\031(%d+)\031(%d+)\031([^\031]*)\031([^\031]*)$')
  else
    u_from, u_to, last, service, user_id =
      match(rest, '^(%d+)\031(%d+)\031(%d+)\031([^\031]*)\031([^\031]*)$')
  end
  if not u_from then return nil end
  return {
    u_from = tonumber(u_from), u_to = tonumber(u_to), last = tonumber(last),
    s_from = tonumber(s_from), s_to = tonumber(s_to), service = service, user_id = user_id,
  }
end

-- The hint's fields (hint_fields) when its SHA1 matches text s; else nil.
local function trusted_hint(s, hint)
  if not hint then return nil end
  local version, digest, rest = match(hint, '^v([23])\031(%x+)\031(.*)$')
  if not digest or redis.sha1hex(redis.sha1hex(s) .. HINT_SEP .. rest) ~= digest then
    return nil
  end
  return hint_fields(version, rest)
end

-- Where byte p of an edited record (lib/edit.lua; p outside every edited range) stands after
-- the edits.
local function position_after(rec, p)
  local shift = 0
  for _, e in ipairs(rec.edits) do
    if e.from <= p and e.to < p then shift = shift + #e.json - (e.to - e.from + 1) end
  end
  return p + shift
end

-- The layout hint for the edited text: where updated_at's new value and the last log entry
-- stand. nil where the edits do not say (no updated_at or no log entry before the edit).
local function next_hint(rec, text)
  local u_from, u_to, last, s_from, s_to
  if rec.hint then
    local h = rec.hint
    u_from, u_to, last, s_from, s_to = h.u_from, h.u_to, h.last, h.s_from, h.s_to
  else
    local u, logs, status = rec.by_name.updated_at, rec.by_name.logs, rec.by_name.status
    if not (u and logs and logs.last and status) then return nil end
    u_from, u_to, last, s_from, s_to = u.from, u.to, logs.last, status.from, status.to
  end
  -- A hint of version 2 says nothing of the status: nor does the next one, until a scan.
  if not s_from then return nil end
  local stamp, appended, status_json = nil, 0, nil
  for _, e in ipairs(rec.edits) do
    if e.from == u_from and e.to == u_to then stamp = e.json end
    if e.from == last + 1 and e.to == last then appended = #e.json end
    if e.from == s_from and e.to == s_to then status_json = e.json end
  end
  if not stamp then return nil end
  local new_u, new_s = position_after(rec, u_from), position_after(rec, s_from)
  local new_s_to = position_after(rec, s_to)
  if status_json then new_s_to = new_s + #status_json - 1 end
  return hint_for(text, new_u, new_u + #stamp - 1, position_after(rec, last) + appended,
    new_s, new_s_to, rec.service, rec.user_id)
end

-- The metadata hash at key: its service, user_id and layout fields, and its PTTL. Read (and
-- its type checked) before anything is written.
local function metadata_plan(key)
  local fields = read_checked('hash', 'HMGET', key, 'service', 'user_id', 'layout')
  return {
    key = key, service = fields[1] or nil, user_id = fields[2] or nil,
    layout = fields[3] or nil, pttl = redis.call('PTTL', key),
  }
end

-- Whether text s holds, at from..to, a string that is the value of member name (its key and
-- colon just before it).
local function string_member_at(s, from, to, name)
  return from > #name and to > from and to <= #s and byte(s, from) == QUOTE
    and byte(s, to) == QUOTE and sub(s, from - #name, from - 1) == name
end

-- The hint a save leaves for the record text s it stores: the one the client made (ARGV of
-- save.lua), or nil when none was given or it does not hold for s: another owner, or
-- positions where no such members stand. The client encoded s itself, compact, every member
-- once (task-state-redis's positions.rs), and hashed it: the script does not hash it again
-- (a wrong SHA1 would only make the next edit scan the record). The checks here guard
-- against a client of another version; a record another writer stores is never given a hint
-- by a save.
local function saved_hint(s, hint, service, user_id)
  if not hint or hint == '' then return nil end
  local rest = match(hint, '^v3\031%x+\031(.*)$')
  local h = rest and hint_fields('3', rest)
  if not h or h.service ~= service or h.user_id ~= user_id then return nil end
  if not (string_member_at(s, h.u_from, h.u_to, '"updated_at":')
      and string_member_at(s, h.s_from, h.s_to, '"status":')
      and h.last < #s and byte(s, h.last) == QUOTE and byte(s, h.last + 1) == RBRACKET) then
    return nil
  end
  return hint
end
