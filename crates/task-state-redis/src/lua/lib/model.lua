-- lib/model.lua: the record as the client's model (TaskRecord) reads it.
--
-- A script changes a record only when the client can decode it before and after: otherwise
-- a mutation would be applied and then reported as failed, and a caller that retried would
-- apply it twice. read_record checks every member the model knows by the model's rules and
-- fails with TSDECODE, before anything is written, on a record that breaks one. The model
-- decodes the keys of the record, of its parameters and of its result, and the strings of the
-- members it knows: those must not hold a lone surrogate escape. The values of parameters,
-- of unknown members and of a result's other members it keeps as text: any valid JSON.

local STATUSES = {
  pending = true, dispatching = true, running = true, completed = true, failed = true,
  cancel_requested = true, cancelled = true,
}
local PRIORITIES = {low = true, high = true}
local MAX_NAME_BYTES = 512
local DAYS_IN_MONTH = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

-- A timestamp as the model parses it: YYYY-MM-DD, T (or t or a space), HH:MM:SS, an optional
-- fraction of 1 to 9 digits, then nothing (a local time), Z, or an offset +HH, +HH:MM,
-- +HH:MM:SS or +HH:MM:SS.fraction (or -).
local function valid_time(t)
  local y, mo, d, h, mi, se, rest =
    match(t, '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$')
  if not y then return false end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if y < 1 or mo < 1 or mo > 12 or d < 1 then return false end
  local days = DAYS_IN_MONTH[mo]
  if mo == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then days = 29 end
  if d > days or tonumber(h) > 23 or tonumber(mi) > 59 or tonumber(se) > 59 then return false end
  local digits, after = match(rest, '^%.(%d+)(.*)$')
  if digits then
    if #digits > 9 then return false end
    rest = after
  end
  if rest == '' or rest == 'Z' or rest == 'z' then return true end
  local oh, tail = match(rest, '^[+-](%d%d)(.*)$')
  if not oh or tonumber(oh) > 23 then return false end
  if tail == '' then return true end
  local om, tail2 = match(tail, '^:(%d%d)(.*)$')
  if not om or tonumber(om) > 59 then return false end
  if tail2 == '' then return true end
  local os, fraction = match(tail2, '^:(%d%d)(.*)$')
  if not os or tonumber(os) > 59 then return false end
  return fraction == '' or find(fraction, '^%.%d+$') ~= nil
end

-- A name that becomes part of a key: not empty, at most 512 bytes, no ':' and no control
-- character (C0, DEL, C1).
local function valid_name(v)
  return #v > 0 and #v <= MAX_NAME_BYTES and not find(v, '[%z\1-\31:\127]')
    and not find(v, '\194[\128-\159]')
end

local function is_null(s, m)
  return byte(s, m.from) == LETTER_N
end

-- The text of the string value of member m, or nil when it is not a string or does not
-- decode (a lone surrogate escape).
local function text_of(scan, m)
  if byte(scan.s, m.from) ~= QUOTE or has_lone(scan, m.from, m.to) then return nil end
  return json_text(sub(scan.s, m.from, m.to))
end

local function string_rule(check)
  return function(rec, m)
    local v = text_of(rec.scan, m)
    if v == nil then return 'is not a string' end
    if check and not check(v) then return 'has an unknown value' end
    m.text = v
  end
end

local function string_array_rule(rec, m)
  if is_null(rec.s, m) then return end
  if byte(rec.s, m.from) ~= LBRACKET or not m.strings or has_lone(rec.scan, m.from, m.to) then
    return 'is not a list of strings'
  end
end

-- parameters: null, or an object whose keys decode; the values are kept as text.
local function parameters_rule(rec, m)
  if is_null(rec.s, m) then return end
  if byte(rec.s, m.from) ~= LBRACE then return 'is not an object' end
  if has_lone(rec.scan, m.from, m.to) and not scan_object(rec.scan, m.from, {}) then
    return 'has a key that does not decode'
  end
end

local function time_rule(rec, m)
  if is_null(rec.s, m) then return end
  local v = text_of(rec.scan, m)
  if v == nil or not valid_time(v) then return 'is not a timestamp' end
end

local function priority_rule(rec, m)
  if is_null(rec.s, m) then return end
  local v = text_of(rec.scan, m)
  if v == nil or not PRIORITIES[v] then return 'is not low or high' end
end

-- result: null, or an object whose keys decode and whose pod_status and launcher_output (each
-- at most once) are strings or null; other members are kept as text and may hold anything.
local RESULT_FIELDS = {pod_status = true, launcher_output = true}
local function result_rule(rec, m)
  if is_null(rec.s, m) then return end
  if byte(rec.s, m.from) ~= LBRACE then return 'is not an object' end
  local fields = {}
  if not scan_object(rec.scan, m.from, fields) then return 'has a key that does not decode' end
  m.fields, m.by_name = fields, {}
  for _, f in ipairs(fields) do
    if RESULT_FIELDS[f.key] then
      if m.by_name[f.key] then return 'has ' .. f.key .. ' twice' end
      local string = byte(rec.s, f.from) == QUOTE and not has_lone(rec.scan, f.from, f.to)
      if not is_null(rec.s, f) and not string then return f.key .. ' is not a string' end
      m.by_name[f.key] = f
    end
  end
end

local RULES = {
  task_id = string_rule(nil),
  service = string_rule(nil),
  user_id = string_rule(nil),
  status = string_rule(function(v) return STATUSES[v] end),
  parameters = parameters_rule,
  jobs = string_array_rule,
  active_jobs = string_array_rule,
  created_at = time_rule,
  updated_at = time_rule,
  logs = string_array_rule,
  result = result_rule,
  priority = priority_rule,
}
local REQUIRED = {'task_id', 'service', 'user_id', 'status'}

-- The record stored at key (its text s when the caller read it already), read for editing:
-- {key, s (the text), scan, members (in order), by_name (the last member of each name, as the
-- model keeps the last), open and close (the braces), edits}. nil when there is no record (or
-- an empty string, which the Python package reads as none); TSDECODE when the model could not
-- decode it. With a trusted hint (lib/hint.lua), or trusted true (the caller checked the
-- hint of text s already), the text checks are skipped.
local function read_record(key, hint, s, trusted)
  s = s or read_checked('string', 'GET', key)
  if not s or s == '' then return nil end
  local scan, why
  if trusted or trusted_hint(s, hint) then
    -- The record is the one a script checked and wrote: only its members are found again.
    scan = {s = s}
  else
    scan, why = new_scan(s)
    if not scan then fail('TSDECODE', key, 'not valid JSON: ' .. why) end
  end
  local open = skip_ws(s, 1)
  if not open or byte(s, open) ~= LBRACE then fail('TSDECODE', key, 'not a JSON object') end
  local members = {}
  local close = scan_object(scan, open, members)
  if not close or skip_ws(s, close + 1) then fail('TSDECODE', key, 'not valid JSON') end
  local rec = {key = key, s = s, scan = scan, members = members, by_name = {},
               open = open, close = close, edits = {}}
  for _, m in ipairs(members) do
    local rule = RULES[m.key]
    if rule then
      local wrong = rule(rec, m)
      if wrong then fail('TSDECODE', key, m.key .. ' ' .. wrong) end
      rec.by_name[m.key] = m
    end
  end
  for _, name in ipairs(REQUIRED) do
    if not rec.by_name[name] then fail('TSDECODE', key, 'no ' .. name) end
  end
  rec.service, rec.user_id = rec.by_name.service.text, rec.by_name.user_id.text
  return rec
end

-- The owner (service, user_id) that a record names, without checking the rest of it: for
-- the cleanup of a task whose metadata is gone, where a damaged record must not stop the
-- indexes from being cleaned. nil, nil when the text does not say.
local function record_owner(s)
  local scan = new_scan(s)
  if not scan then return nil, nil end
  local open = skip_ws(s, 1)
  if not open or byte(s, open) ~= LBRACE then return nil, nil end
  local members = {}
  if not scan_object(scan, open, members) then return nil, nil end
  local owner = {}
  for _, m in ipairs(members) do
    if m.key == 'service' or m.key == 'user_id' then
      local v = text_of(scan, m)
      if v and valid_name(v) then owner[m.key] = v else owner[m.key] = nil end
    end
  end
  return owner.service, owner.user_id
end
