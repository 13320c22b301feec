-- lib.lua: shared by every script (prepended to each at build time).
--
-- A record is edited as text, never decoded and re-encoded: cjson would rewrite numbers with
-- 14 significant digits and turn [] into {}. The scanner below finds the byte ranges of the
-- record's top-level members; edits replace or insert text at those ranges, and every value
-- spliced in was encoded as JSON by the client.
--
-- Big records are not read whole. A log append needs the head (up to the start of "logs") and
-- the tail (from the end of "logs"), never the log lines themselves. Where the logs end is
-- remembered in the metadata hash (field "layout" = "<length>,<position of ]>") after each of
-- our writes, and checked against the record before it is trusted: length, the bracket, and
-- a parse of the whole tail. Anything else (a record the Python package wrote, a hint that
-- does not fit) takes the slow path: the whole record is read and scanned.
--
-- The record is checked before anything is written, and written last: an error leaves it
-- unchanged. (An index of the wrong type is found by its SADD, which comes before the record
-- write; re-adding a task to the indexes it belongs to changes nothing but their TTL.)

local byte, find, sub = string.byte, string.find, string.sub

-- Raises a typed error: kind, key and detail separated by \031 (unit separator), which no
-- name of the layout contains, so that the client finds them whatever Redis wraps around
-- the message (Redis 6.2 and 7 wrap it differently). A string error at level 0 works on
-- every version; an error table does not on 6.2.
local function fail(kind, key, reason)
  error(kind .. '\031' .. key .. '\031' .. reason .. '\031', 0)
end

-- redis.pcall that turns a WRONGTYPE error of key into a typed error naming it, and raises any
-- other error (OOM, READONLY, NOREPLICAS, ...) unchanged: Redis 7 takes the error table
-- itself, Redis 6.2 only its text (its error handler cannot concatenate a table).
local function pcall_typed(expected, command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) ~= 'table' or not reply.err then return reply end
  if sub(reply.err, 1, 9) == 'WRONGTYPE' then fail('TSWRONGTYPE', key, expected) end
  if redis.REDIS_VERSION then error(reply) end
  error(reply.err, 0)
end

-- The first index at or after i that is not JSON white space (nil at the end). Compact JSON
-- has none, so the byte test almost always answers without a pattern search.
local function skip_ws(s, i)
  local c = byte(s, i)
  if c == nil then return nil end
  if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then return i end
  return find(s, '[^ \t\r\n]', i)
end

-- s:byte(i) is an opening quote; the index of the closing quote, or nil if s ends first.
local function string_end(s, i)
  local j = i
  while true do
    j = find(s, '"', j + 1, true)
    if not j then return nil end
    if byte(s, j - 1) ~= 92 then return j end
    local k = j - 1
    while byte(s, k) == 92 do k = k - 1 end
    if (j - 1 - k) % 2 == 0 then return j end
  end
end

-- The index of the last byte of the JSON value starting at i, or nil if s ends first.
local function value_end(s, i)
  local c = byte(s, i)
  if c == 34 then return string_end(s, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      j = find(s, '[%[%]{}"]', j)
      if not j then return nil end
      local b = byte(s, j)
      if b == 34 then
        j = string_end(s, j)
        if not j then return nil end
      elseif b == 123 or b == 91 then
        depth = depth + 1
      else
        depth = depth - 1
        if depth == 0 then return j end
      end
      j = j + 1
    end
  end
  local e = find(s, '[,}%] \t\r\n]', i)
  if not e or e == i then return nil end
  return e - 1
end

-- The string a JSON string literal (quotes included) stands for, or nil when the text is not
-- one. Literals without escapes, nearly all of them, are cut out without cjson.
local function json_text(literal)
  if byte(literal, 1) ~= 34 or byte(literal, #literal) ~= 34 or #literal < 2 then return nil end
  local inner = sub(literal, 2, -2)
  if not find(inner, '[\\"]') then return inner end
  local ok, v = pcall(cjson.decode, literal)
  if ok and type(v) == 'string' then return v end
  return nil
end

-- Scans object members from position i, where i is at a key (or at the closing brace).
-- Fills members[key] = {value start, value end} (offset added to positions).
-- Returns a state: 'end' (closing brace at members._close), 'stop' (stop_key found, its
-- value starts at members[stop_key][1]), 'more' (s ended early), 'bad'.
local function scan_from(s, i, members, offset, stop_key)
  local first = true
  while true do
    i = skip_ws(s, i)
    if not i then return 'more' end
    local c = byte(s, i)
    if c == 125 and first then members._close = i + offset; return 'end' end
    if c ~= 34 then return 'bad' end
    local ke = string_end(s, i)
    if not ke then return 'more' end
    local key = sub(s, i + 1, ke - 1)
    if find(key, '\\', 1, true) then
      local ok, decoded = pcall(cjson.decode, sub(s, i, ke))
      if not ok then return 'bad' end
      key = decoded
    end
    i = skip_ws(s, ke + 1)
    if not i then return 'more' end
    if byte(s, i) ~= 58 then return 'bad' end
    i = skip_ws(s, i + 1)
    if not i then return 'more' end
    if key == stop_key then
      members[key] = {i + offset, nil}
      return 'stop'
    end
    local ve = value_end(s, i)
    if not ve then return 'more' end
    members[key] = {i + offset, ve + offset}
    i = skip_ws(s, ve + 1)
    if not i then return 'more' end
    c = byte(s, i)
    if c == 125 then members._close = i + offset; return 'end' end
    if c ~= 44 then return 'bad' end
    i = i + 1
    first = false
  end
end

-- Scans a whole object text (s is the object and may be followed only by white space).
local function scan_object(s, offset, stop_key)
  local members = {}
  local i = skip_ws(s, 1)
  if not i or string.byte(s, i) ~= 123 then return members, 'bad' end
  local state = scan_from(s, i + 1, members, offset, stop_key)
  if state == 'end' and skip_ws(s, members._close - offset + 1) then return members, 'bad' end
  return members, state
end

-- Positions are 1-based and absolute in the record. A record table holds:
--   key, meta, n (length), m (members), close (index of the closing brace),
--   full (the whole text, slow path) or head/tail (fast path: head = s[1..l1],
--   tail = s[l2..n]), l1/l2 (the logs brackets; nil without a logs array).

local function load_full(rec)
  local s = redis.call('GET', rec.key)
  local m, state = scan_object(s, 0, nil)
  if state ~= 'end' then fail('TSDECODE', rec.key, 'not a JSON object') end
  rec.full, rec.m, rec.close, rec.n = s, m, m._close, #s
  local logs = m.logs
  if logs and string.byte(s, logs[1]) == 91 then
    rec.l1, rec.l2 = logs[1], logs[2]
  end
  return rec
end

-- Whether tail, which starts at the `]` closing the logs (record position offset + 1), is the
-- rest of the record: that bracket, members, the closing brace and nothing after it. Fills
-- members (positions + offset) and members._close.
local function parse_tail(tail, offset, members)
  local i = skip_ws(tail, 2)
  if not i then return false end
  local c = byte(tail, i)
  if c == 125 then
    members._close = offset + i
  elseif c ~= 44 or scan_from(tail, i + 1, members, offset, nil) ~= 'end' then
    return false
  end
  return not skip_ws(tail, members._close - offset + 1)
end

-- Records up to this size are read whole in one call: cheaper than two ranges.
local SMALL = 8192

-- The fast path: head scan up to "logs", the remembered end of the logs checked by parsing
-- the whole tail. Returns nil when the record does not qualify.
local function load_fast(rec, hint)
  local n = rec.n
  local hn, hl2 = string.match(hint, '^(%d+),(%d+)')
  hn, hl2 = tonumber(hn), tonumber(hl2)
  if hn ~= n or not hl2 or hl2 < 3 or hl2 >= n then return nil end
  -- around: the record from two bytes before the logs' closing bracket to its end.
  local head, m, state, around
  if n <= SMALL then
    local s = redis.call('GET', rec.key)
    head = sub(s, 1, hl2 - 1)
    m, state = scan_object(head, 0, 'logs')
    around = sub(s, hl2 - 2)
  else
    -- The head is read up to the logs' closing bracket at most; the scan stops at "logs".
    local size = 1024
    while true do
      local last = math.min(size, hl2 - 1)
      head = redis.call('GETRANGE', rec.key, 0, last - 1)
      m, state = scan_object(head, 0, 'logs')
      if state ~= 'more' or last == hl2 - 1 then break end
      size = size * 4
    end
    if state == 'stop' then around = redis.call('GETRANGE', rec.key, hl2 - 3, n - 1) end
  end
  if state ~= 'stop' then return nil end
  local l1 = m.logs[1]
  if l1 >= hl2 or byte(head, l1) ~= 91 then return nil end
  for _, k in ipairs({'status', 'updated_at', 'service', 'user_id'}) do
    if not m[k] then return nil end
  end
  if byte(around, 3) ~= 93 then return nil end
  -- Before the bracket: a closing quote, or the opening bracket of an empty array. An
  -- escaped quote (a backslash before it) would put the bracket inside a string: anything
  -- that looks like it takes the slow path.
  local before = byte(around, 2)
  if not (hl2 == l1 + 1 or before == 34) then return nil end
  if before == 34 and byte(around, 1) == 92 then return nil end
  local tail = sub(around, 3)
  if not parse_tail(tail, hl2 - 1, m) then return nil end
  rec.head, rec.tail, rec.m, rec.close = sub(head, 1, l1), tail, m, m._close
  rec.l1, rec.l2 = l1, hl2
  m.logs[2] = hl2
  return rec
end

local function check_type(key, expected)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= expected then fail('TSWRONGTYPE', key, expected) end
  return t
end

local function index_keys(service, user_id)
  return {
    'index:tasks',
    'index:service:' .. service,
    'index:service:' .. service .. ':users',
    'index:service:' .. service .. ':user:' .. user_id,
    'index:user:' .. user_id,
  }
end

-- Puts the task of key (`task:{id}`) into its five index sets and sets their TTL. A set of the
-- wrong type is a typed error, raised before anything else of the task is written when this
-- comes first (re-adding a task to the indexes it belongs to changes nothing but their TTL).
local function refresh_indexes(key, service, user_id, ttl)
  local id = string.match(key, '^task:(.*)$')
  for i, k in ipairs(index_keys(service, user_id)) do
    local member = id
    if i == 3 then member = user_id end
    pcall_typed('set', 'SADD', k, member)
    redis.call('EXPIRE', k, ttl)
  end
end

-- The service and user_id of the record at key, read from as much of its head as needed
-- (nil for what the record lacks, or when it is not an object); with stop_key, only from the
-- members before that one. size: the first read (4096 bytes by default), growing as needed.
local function record_owner(key, stop_key, size)
  size = size or 4096
  while true do
    local head = redis.call('GETRANGE', key, 0, size - 1)
    local m, state = scan_object(head, 0, stop_key)
    local function decoded(name)
      local span = m[name]
      if state == 'bad' or not span then return nil end
      return json_text(sub(head, span[1], span[2]))
    end
    local service, user_id = decoded('service'), decoded('user_id')
    if (service and user_id) or state ~= 'more' or #head < size then return service, user_id end
    size = size * 4
  end
end

-- Loads the record of KEYS[1] (metadata KEYS[2]) for editing; nil when it does not exist.
-- pcall turns a key of the wrong type into a typed error naming it, without a TYPE call.
local function load_record(key, meta)
  local n = pcall_typed('string', 'STRLEN', key)
  if n == 0 then
    if redis.call('EXISTS', key) == 0 then return nil end
    fail('TSDECODE', key, 'empty record')
  end
  local hint = pcall_typed('hash', 'HGET', meta, 'layout')
  local rec = {key = key, meta = meta, n = n, edits = {}}
  if not (hint and load_fast(rec, hint)) then load_full(rec) end
  return rec
end

-- The text of bytes a..b, which must lie in the loaded parts of the record.
local function text(rec, a, b)
  if rec.full then return string.sub(rec.full, a, b) end
  if b <= rec.l1 then return string.sub(rec.head, a, b) end
  return string.sub(rec.tail, a - rec.l2 + 1, b - rec.l2 + 1)
end

local function member_string(rec, key)
  local span = rec.m[key]
  if not span then return nil end
  local value = json_text(text(rec, span[1], span[2]))
  if not value then fail('TSDECODE', rec.key, key .. ' is not a string') end
  return value
end

local function edit(rec, a, b, replacement)
  table.insert(rec.edits, {a, b, replacement})
end

-- Replaces a top-level member's value, or adds the member before the closing brace.
local function set_member(rec, key, json)
  local span = rec.m[key]
  if span then
    edit(rec, span[1], span[2], json)
  else
    local sep = ''
    for k, _ in pairs(rec.m) do
      if k ~= '_close' then sep = ',' end
    end
    edit(rec, rec.close, rec.close - 1, sep .. cjson.encode(key) .. ':' .. json)
  end
end

-- Appends already-encoded JSON strings to the logs array (making one if there is none).
local function append_logs(rec, entries)
  if #entries == 0 then return end
  local joined = table.concat(entries, ',')
  if rec.l2 then
    local sep = ','
    if rec.l2 == rec.l1 + 1 then sep = '' end
    edit(rec, rec.l2, rec.l2 - 1, sep .. joined)
  else
    set_member(rec, 'logs', '[' .. joined .. ']')
  end
end

local function apply(s, start, edits)
  local out, pos = {}, start
  for _, e in ipairs(edits) do
    table.insert(out, string.sub(s, pos - start + 1, e[1] - start))
    table.insert(out, e[3])
    pos = e[2] + 1
  end
  table.insert(out, string.sub(s, pos - start + 1))
  return table.concat(out)
end

-- Writes the edits, refreshes every TTL and index, remembers the layout. ttl in seconds.
-- The indexes come first: a key of the wrong type there stops the script before the record
-- changes (re-adding the task to indexes it belongs to changes nothing but their TTL).
local function commit(rec, ttl)
  local service, user_id = member_string(rec, 'service'), member_string(rec, 'user_id')
  if not service or not user_id then fail('TSDECODE', rec.key, 'no service or user_id') end
  refresh_indexes(rec.key, service, user_id, ttl)
  table.sort(rec.edits, function(x, y) return x[1] < y[1] end)
  local shift = 0
  for _, e in ipairs(rec.edits) do
    if rec.l2 and e[1] <= rec.l2 then shift = shift + #e[3] - (e[2] - e[1] + 1) end
  end
  local length
  if rec.full then
    local s = apply(rec.full, 1, rec.edits)
    redis.call('SET', rec.key, s, 'EX', ttl)
    length = #s
  else
    local head_edits, tail_edits = {}, {}
    for _, e in ipairs(rec.edits) do
      if e[2] <= rec.l1 and e[1] <= rec.l1 then table.insert(head_edits, e) else table.insert(tail_edits, e) end
    end
    local head = apply(rec.head, 1, head_edits)
    local tail = apply(rec.tail, rec.l2, tail_edits)
    local middle_len = rec.l2 - rec.l1 - 1
    if #head == #rec.head and #tail >= #rec.tail then
      if #head_edits > 0 then redis.call('SETRANGE', rec.key, 0, head) end
      redis.call('SETRANGE', rec.key, rec.l2 - 1, tail)
      redis.call('EXPIRE', rec.key, ttl)
    else
      local middle = ''
      if middle_len > 0 then middle = redis.call('GETRANGE', rec.key, rec.l1, rec.l2 - 2) end
      redis.call('SET', rec.key, head .. middle .. tail, 'EX', ttl)
    end
    length = #head + middle_len + #tail
  end
  if rec.l2 then
    local layout = length .. ',' .. (rec.l2 + shift)
    -- Where updated_at's value now stands, when it is before the logs: what lets the next
    -- append skip the head (append_tail_only).
    local u = rec.m.updated_at
    if u and u[2] and u[2] < rec.l2 then
      local moved, written = 0, nil
      for _, e in ipairs(rec.edits) do
        if e[1] == u[1] and e[2] == u[2] then
          written = #e[3]
        elseif e[1] < u[1] then
          moved = moved + #e[3] - (e[2] - e[1] + 1)
        end
      end
      if written then
        layout = layout .. ',' .. (u[1] + moved) .. ',' .. (u[1] + moved + written - 1)
      end
    end
    redis.call('HSET', rec.meta, 'service', service, 'user_id', user_id, 'layout', layout)
  else
    redis.call('HSET', rec.meta, 'service', service, 'user_id', user_id)
    redis.call('HDEL', rec.meta, 'layout')
  end
  redis.call('EXPIRE', rec.meta, ttl + 60)
end

-- The quickest append, for a record this project wrote last: only updated_at (rewritten in
-- place) and the tail after the logs are touched, and the owner is read from the record's
-- first members. The remembered layout ("<length>,<]>,<updated_at start>,<updated_at end>") is
-- checked first: the length, `"updated_at":` before a quoted value of the new one's length,
-- a closing quote and bracket at the end of the logs, and a parse of the whole tail.
-- Returns true when it appended; nil (having written nothing) when the record does not
-- qualify, for the general path to handle.
local function append_tail_only(key, meta, ttl, updated_at, entries)
  if #entries == 0 then return nil end
  local n = redis.pcall('STRLEN', key)
  if type(n) ~= 'number' or n == 0 then return nil end
  local hint = redis.pcall('HGET', meta, 'layout')
  if type(hint) ~= 'string' then return nil end
  local hn, hl2, hu1, hu2 = string.match(hint, '^(%d+),(%d+),(%d+),(%d+)$')
  hn, hl2, hu1, hu2 = tonumber(hn), tonumber(hl2), tonumber(hu1), tonumber(hu2)
  if hn ~= n or not hu2 or hu1 < 15 or hu2 >= hl2 - 2 or hl2 >= n then return nil end
  -- The owner, from the record itself: its first members, before "status".
  local service, user_id = record_owner(key, 'status', 256)
  if not (service and user_id) then return nil end
  if #updated_at ~= hu2 - hu1 + 1 then return nil end
  local old = redis.call('GETRANGE', key, hu1 - 15, hu2 - 1)
  local c = byte(old, 1)
  if (c ~= 44 and c ~= 123) or sub(old, 2, 14) ~= '"updated_at":' then return nil end
  local value = sub(old, 15)
  if byte(value, 1) ~= 34 or find(value, '"', 2, true) ~= #value then return nil end
  local around = redis.call('GETRANGE', key, hl2 - 3, n - 1)
  -- A non-empty array of strings ends with an unescaped quote; an empty one takes the
  -- general path.
  if byte(around, 3) ~= 93 or byte(around, 2) ~= 34 or byte(around, 1) == 92 then return nil end
  local tail = sub(around, 3)
  if not parse_tail(tail, hl2 - 1, {}) then return nil end
  refresh_indexes(key, service, user_id, ttl)
  local insert = ',' .. table.concat(entries, ',')
  redis.call('SETRANGE', key, hu1 - 1, updated_at)
  redis.call('SETRANGE', key, hl2 - 1, insert .. tail)
  redis.call('EXPIRE', key, ttl)
  local layout = (n + #insert) .. ',' .. (hl2 + #insert) .. ',' .. hu1 .. ',' .. hu2
  redis.call('HSET', meta, 'service', service, 'user_id', user_id, 'layout', layout)
  redis.call('EXPIRE', meta, ttl + 60)
  return true
end

-- The reply of a mutation: {'1', record or ''}.
local function reply(rec, mode)
  if mode == 'record' then return {'1', redis.call('GET', rec.key)} end
  return {'1', ''}
end
