-- lib/edit.lua: edits of a record read by read_record. Each edit replaces the bytes from..to
-- of the text (an insertion has to = from - 1) with JSON that the client encoded; the bytes
-- outside the edits stay exactly as they were.

-- An edit is {from, to, json, order}: order (the number of edits before it) keeps two
-- insertions at one position in the order they were made.
local function edit(rec, from, to, json)
  local edits = rec.edits
  edits[#edits + 1] = {from = from, to = to, json = json, order = #edits}
end

-- Inserts members (`"name":json`, comma separated) after the last member of the object whose
-- members and opening brace are given.
local function insert_members(rec, members, open, text)
  local last = members[#members]
  if last then
    edit(rec, last.to + 1, last.to, ',' .. text)
  else
    edit(rec, open + 1, open, text)
  end
end

-- Replaces the value of a top-level member (its last occurrence, the one the model reads), or
-- adds the member at the end of the record.
local function set_member(rec, name, json)
  local m = rec.by_name[name]
  if m then
    edit(rec, m.from, m.to, json)
  else
    insert_members(rec, rec.members, rec.open, cjson.encode(name) .. ':' .. json)
  end
end

-- Stamps updated_at (a JSON string), and gives a record whose created_at is absent or null
-- the same time: such a record reads as created now in the configured zone (the Python
-- model's default), and a write stores it, as the Python package and the memory backend do.
local function stamp(rec, updated_at)
  set_member(rec, 'updated_at', updated_at)
  local created = rec.by_name.created_at
  if not created or is_null(rec.s, created) then set_member(rec, 'created_at', updated_at) end
end

-- Appends log entries (JSON strings) after the last element of the logs array, or writes a
-- new array where logs is null or absent.
local function append_entries(rec, entries)
  if #entries == 0 then return end
  local joined = table.concat(entries, ',')
  local logs = rec.by_name.logs
  if logs and logs.count then
    if logs.last then
      edit(rec, logs.last + 1, logs.last, ',' .. joined)
    else
      edit(rec, logs.from + 1, logs.from, joined)
    end
  else
    set_member(rec, 'logs', '[' .. joined .. ']')
  end
end

-- Sets pod_status and launcher_output (JSON strings; nil keeps a field) of the result,
-- keeping its other members; a null or absent result becomes a whole new one.
local function set_result(rec, pod_status, launcher_output)
  local result = rec.by_name.result
  local given = {
    {name = 'pod_status', json = pod_status}, {name = 'launcher_output', json = launcher_output},
  }
  if not (result and result.fields) then
    set_member(rec, 'result', '{"pod_status":' .. (pod_status or 'null') ..
      ',"launcher_output":' .. (launcher_output or 'null') .. '}')
    return
  end
  local added = {}
  for _, f in ipairs(given) do
    local name, json = f.name, f.json
    local field = result.by_name[name]
    if json and field then
      edit(rec, field.from, field.to, json)
    elseif json then
      added[#added + 1] = '"' .. name .. '":' .. json
    end
  end
  if #added > 0 then insert_members(rec, result.fields, result.from, table.concat(added, ',')) end
end

-- The record's text with the edits applied.
local function edited_text(rec)
  local edits = rec.edits
  table.sort(edits, function(x, y)
    return x.from < y.from or (x.from == y.from and x.order < y.order)
  end)
  local out, pos, s = {}, 1, rec.s
  for _, e in ipairs(edits) do
    out[#out + 1] = sub(s, pos, e.from - 1)
    out[#out + 1] = e.json
    pos = e.to + 1
  end
  out[#out + 1] = sub(s, pos)
  return table.concat(out)
end

-- The quickest append, for a record whose layout hint is trusted (lib/hint.lua): the record
-- is not scanned; updated_at is replaced and the entries go after the last log entry, where
-- the hint says they stand. Returns the record to commit, or nil and the text read (nil when
-- nothing was read) for the general path; a text returned had no trusted hint.
local function quick_append(key, meta, updated_at, entries)
  if #entries == 0 then return nil end
  local s = read_checked('string', 'GET', key)
  if not s or s == '' then return nil, s end
  local hint = trusted_hint(s, meta.layout)
  if not hint then return nil, s end
  local rec = {key = key, s = s, edits = {}, hint = hint,
               service = hint.service, user_id = hint.user_id}
  edit(rec, hint.u_from, hint.u_to, updated_at)
  edit(rec, hint.last + 1, hint.last, ',' .. table.concat(entries, ','))
  return rec
end

-- The quickest status change, for a record whose layout hint of version 3 is trusted: the
-- record is not scanned; the status, updated_at and the entries go where the hint says.
-- Returns the record to commit with its current status in rec.status, or nil, the text
-- read (nil when nothing was read) and whether a hint of version 2 was trusted (the text is
-- then the one a script checked and wrote: read_record need not check it again).
local function quick_status(key, meta)
  local s = read_checked('string', 'GET', key)
  if not s or s == '' then return nil, s, false end
  local hint = trusted_hint(s, meta.layout)
  if not hint then return nil, s, false end
  if not hint.s_from then return nil, s, true end
  local rec = {key = key, s = s, edits = {}, hint = hint,
               service = hint.service, user_id = hint.user_id,
               status = cjson.decode(sub(s, hint.s_from, hint.s_to))}
  return rec
end

-- The edits of a status change on a record from quick_status.
local function quick_status_edits(rec, status, updated_at, entries)
  local hint = rec.hint
  edit(rec, hint.s_from, hint.s_to, status)
  edit(rec, hint.u_from, hint.u_to, updated_at)
  if #entries > 0 then edit(rec, hint.last + 1, hint.last, ',' .. table.concat(entries, ',')) end
end
