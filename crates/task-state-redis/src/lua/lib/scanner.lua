-- lib/scanner.lua: a strict JSON scanner that finds the byte ranges of a record's members.
--
-- A record is edited as text, never decoded and re-encoded: cjson would rewrite numbers with
-- 14 significant digits and turn [] into {}. The scanner accepts exactly what the client's
-- model (TaskRecord, with serde_json) accepts: RFC 8259 with white space anywhere it is
-- allowed, valid UTF-8, no raw control characters in strings, every escape well formed,
-- numbers in JSON's grammar. The model keeps parameters and unknown members as text
-- (serde_json's RawValue), which serde_json checks for that grammar only: values nest at any
-- depth there and may hold a lone surrogate escape ("\ud800"). The strings the model decodes
-- (the keys of the record, of its parameters and of its result, and the known members) must
-- have their surrogate escapes in pairs, which has_lone tells. The whole record is scanned on
-- every edit without a trusted hint: a position remembered from an earlier write could have
-- been made stale by another writer, and a record that the client could not decode must
-- never be changed.

-- The first index at or after i that is not white space (nil at the end). Compact JSON has
-- none, so the byte test almost always answers without a pattern search.
local function skip_ws(s, i)
  local c = byte(s, i)
  if c == nil then return nil end
  if c ~= SPACE and c ~= TAB and c ~= LF and c ~= CR then return i end
  return find(s, '[^ \t\r\n]', i)
end

-- The multi-byte UTF-8 sequences (RFC 3629: no overlong forms, no surrogates, nothing past
-- U+10FFFF), the most common in Korean and other CJK text first. Each is replaced by an ASCII
-- byte, so that removing one cannot join the bytes around it into another.
local UTF8_SEQUENCES = {
  '[\225-\236\238\239][\128-\191][\128-\191]',
  '\237[\128-\159][\128-\191]',
  '[\194-\223][\128-\191]',
  '\224[\160-\191][\128-\191]',
  '\240[\144-\191][\128-\191][\128-\191]',
  '[\241-\243][\128-\191][\128-\191][\128-\191]',
  '\244[\128-\143][\128-\191][\128-\191]',
}

local function valid_utf8(s)
  if not find(s, '[\128-\255]') then return true end
  for _, sequence in ipairs(UTF8_SEQUENCES) do
    s = gsub(s, sequence, '_')
    if not find(s, '[\128-\255]') then return true end
  end
  return false
end

-- Every backslash of the text starts a well-formed escape: one of \" \\ \/ \b \f \n \r \t, or
-- \u and four hex digits. Backslashes can only stand inside strings in valid JSON (the
-- structure scan rejects any other), and escapes follow one another from left to right, so
-- one pass over the backslashes checks them all. Returns false for a malformed escape, else
-- true and the positions of the surrogate escapes that are not in a pair (nil when there is
-- none): a high one (D800-DBFF) not followed by \u and a low one, or a low one (DC00-DFFF)
-- alone.
local function check_escapes(s)
  local lone
  local i = find(s, '\\', 1, true)
  while i do
    local c = byte(s, i + 1)
    if c == LETTER_U then
      local code = tonumber(match(s, '^%x%x%x%x', i + 2) or '', 16)
      if not code then return false end
      local paired = false
      if code >= 0xD800 and code <= 0xDBFF then
        local low = tonumber(match(s, '^\\u(%x%x%x%x)', i + 6) or '', 16)
        paired = low ~= nil and low >= 0xDC00 and low <= 0xDFFF
      end
      if paired then
        i = i + 12
      else
        if code >= 0xD800 and code <= 0xDFFF then
          lone = lone or {}
          lone[#lone + 1] = i
        end
        i = i + 6
      end
    elseif c and SIMPLE_ESCAPES[c] then
      i = i + 2
    else
      return false
    end
    i = find(s, '\\', i, true)
  end
  return true, lone
end

-- A scan of text s. Checks what can be checked on the whole text at once, at C speed:
-- control bytes that are allowed nowhere, UTF-8, escapes. Returns nil and a reason when the
-- text fails one of them.
local function new_scan(s)
  if find(s, '[%z\1-\8\11\12\14-\31]') then return nil, 'a raw control character' end
  if not valid_utf8(s) then return nil, 'invalid UTF-8' end
  local lone
  if find(s, '\\', 1, true) then
    local ok
    ok, lone = check_escapes(s)
    if not ok then return nil, 'an invalid escape' end
  end
  -- Tab, line feed and carriage return are white space outside strings and forbidden inside
  -- them: where the text has any, strings are checked for them (next_ws is the first one at
  -- or after the string being read).
  return {s = s, next_ws = find(s, '[\t\n\r]'), lone = lone}
end

-- True when the text from..to holds a surrogate escape that is not in a pair, so that a
-- string there does not decode. The positions are in order: a binary search finds the first
-- at or after from. (The scan of a record with a trusted hint has no such list: a script
-- checked that record before it wrote it.)
local function has_lone(scan, from, to)
  local lone = scan.lone
  if not lone then return false end
  local lo, hi = 1, #lone
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if lone[mid] < from then lo = mid + 1 else hi = mid end
  end
  return lone[lo] >= from and lone[lo] <= to
end

-- The index of the quote closing the string that opens at i, or nil.
local function string_end(scan, i)
  local s = scan.s
  local j = i
  while true do
    j = find(s, '"', j + 1, true)
    if not j then return nil end
    if byte(s, j - 1) ~= BACKSLASH then break end
    local k = j - 2
    while byte(s, k) == BACKSLASH do k = k - 1 end
    if (j - 1 - k) % 2 == 0 then break end
  end
  local ws = scan.next_ws
  if ws and ws < j then
    if ws > i then return nil end
    ws = find(s, '[\t\n\r]', i)
    scan.next_ws = ws
    if ws and ws < j then return nil end
  end
  return j
end

local function number_end(s, i)
  local _, e = find(s, '^-?%d+', i)
  if not e then return nil end
  local first = i
  if byte(s, i) == MINUS then first = i + 1 end
  if byte(s, first) == ZERO and e > first then return nil end
  local _, f = find(s, '^%.%d+', e + 1)
  if f then e = f end
  local _, x = find(s, '^[eE][+-]?%d+', e + 1)
  if x then e = x end
  return e
end

-- The text a JSON string literal (quotes included, already checked) stands for. Literals
-- without escapes, nearly all of them, are cut out without cjson.
local function json_text(literal)
  local inner = sub(literal, 2, -2)
  if not find(inner, '\\', 1, true) then return inner end
  return cjson.decode(literal)
end

-- The end of the string, literal or number at i, or nil.
local function scalar_end(scan, i)
  local s = scan.s
  local c = byte(s, i)
  if c == QUOTE then return string_end(scan, i) end
  if c == LETTER_T then
    if sub(s, i, i + 3) == 'true' then return i + 3 end
  elseif c == LETTER_F then
    if sub(s, i, i + 4) == 'false' then return i + 4 end
  elseif c == LETTER_N then
    if sub(s, i, i + 3) == 'null' then return i + 3 end
  elseif c == MINUS or (c and c >= ZERO and c <= ZERO + 9) then
    return number_end(s, i)
  end
  return nil
end

-- Where the value of the object member whose key starts at j begins (past the key, the colon
-- and white space), or nil.
local function member_value(scan, j)
  local s = scan.s
  if byte(s, j) ~= QUOTE then return nil end
  local ke = string_end(scan, j)
  if not ke then return nil end
  local k = skip_ws(s, ke + 1)
  if not k or byte(s, k) ~= COLON then return nil end
  return skip_ws(s, k + 1)
end

-- The end of the value starting at i, or nil when the text there is not a JSON value. The
-- model keeps such values as text at any depth, so the scan keeps the brackets it is in on a
-- stack of its own instead of recursing (Lua's would overflow on deep nesting).
local function scan_value(scan, i)
  local s = scan.s
  local closers, depth = nil, 0
  while true do
    -- A value starts at i. e becomes its end, or stays nil where an array or object opened
    -- whose first element starts at the new i.
    local c, e = byte(s, i), nil
    if c == LBRACE or c == LBRACKET then
      local closer = RBRACKET
      if c == LBRACE then closer = RBRACE end
      local j = skip_ws(s, i + 1)
      if not j then return nil end
      if byte(s, j) == closer then
        e = j
      else
        depth = depth + 1
        closers = closers or {}
        closers[depth] = closer
        if closer == RBRACE then j = member_value(scan, j) end
        if not j then return nil end
        i = j
      end
    else
      e = scalar_end(scan, i)
      if not e then return nil end
    end
    -- After a whole value: close the arrays and objects it ends, or go on to the next element.
    while e do
      if depth == 0 then return e end
      local k = skip_ws(s, e + 1)
      if not k then return nil end
      local b = byte(s, k)
      if b == closers[depth] then
        depth = depth - 1
        e = k
      elseif b == COMMA then
        local j = skip_ws(s, k + 1)
        if j and closers[depth] == RBRACE then j = member_value(scan, j) end
        if not j then return nil end
        i, e = j, nil
      else
        return nil
      end
    end
  end
end

-- The array opening at i. Returns its end, its number of elements, the end of its last
-- element (nil when empty) and whether every element is a string; nil when it is not valid.
local function scan_array(scan, i)
  local s = scan.s
  local j = skip_ws(s, i + 1)
  if not j then return nil end
  if byte(s, j) == RBRACKET then return j, 0, nil, true end
  local count, strings = 0, true
  while true do
    local e
    if byte(s, j) == QUOTE then
      e = string_end(scan, j)
    else
      e = scan_value(scan, j)
      strings = false
    end
    if not e then return nil end
    count = count + 1
    local k = skip_ws(s, e + 1)
    if not k then return nil end
    local c = byte(s, k)
    if c == RBRACKET then return k, count, e, strings end
    if c ~= COMMA then return nil end
    j = skip_ws(s, k + 1)
    if not j then return nil end
  end
end

-- The object opening at i, one whose keys the model decodes (the record, its result, its
-- parameters): its end, or nil when it is not valid or a key has a lone surrogate escape.
-- Appends {key = decoded key, at = key start, from = value start, to = value end} to members
-- for each member in order (a key that occurs twice is there twice); an array value also gets
-- count, last and strings as scan_array returns them.
local function scan_object(scan, i, members)
  local s = scan.s
  local j = skip_ws(s, i + 1)
  if not j then return nil end
  if byte(s, j) == RBRACE then return j end
  while true do
    if byte(s, j) ~= QUOTE then return nil end
    local ke = string_end(scan, j)
    if not ke or has_lone(scan, j, ke) then return nil end
    local k = skip_ws(s, ke + 1)
    if not k or byte(s, k) ~= COLON then return nil end
    local v = skip_ws(s, k + 1)
    if not v then return nil end
    local e, count, last, strings
    if byte(s, v) == LBRACKET then
      e, count, last, strings = scan_array(scan, v)
    else
      e = scan_value(scan, v)
    end
    if not e then return nil end
    members[#members + 1] = {
      key = json_text(sub(s, j, ke)), at = j, from = v, to = e,
      count = count, last = last, strings = strings,
    }
    k = skip_ws(s, e + 1)
    if not k then return nil end
    local c = byte(s, k)
    if c == RBRACE then return k end
    if c ~= COMMA then return nil end
    j = skip_ws(s, k + 1)
    if not j then return nil end
  end
end
