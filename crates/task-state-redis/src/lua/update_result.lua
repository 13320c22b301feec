-- update_result.lua: sets the given fields of a task's result and keeps the others.
--
-- KEYS[1] task:{id}            KEYS[2] task:{id}:metadata
-- ARGV[1] ttl in seconds       ARGV[2] updated_at as a JSON string
-- ARGV[3] 'record' to return the updated record, 'ack' to return ''
-- ARGV[4] pod_status as a JSON string, or '' to keep it
-- ARGV[5] launcher_output as a JSON string, or '' to keep it
-- Returns {'0'} when the task does not exist, else {'1', record or ''}.
local rec = load_record(KEYS[1], KEYS[2])
if not rec then return {'0'} end
local fields = {{'pod_status', ARGV[4]}, {'launcher_output', ARGV[5]}}
local span = rec.m.result
local raw = nil
if span then raw = text(rec, span[1], span[2]) end
if raw and string.byte(raw, 1) == 123 then
  local members, state = scan_object(raw, span[1] - 1, nil)
  if state ~= 'end' then fail('TSDECODE', rec.key, 'result is not an object') end
  local has_members = false
  for k, _ in pairs(members) do
    if k ~= '_close' then has_members = true end
  end
  for _, f in ipairs(fields) do
    if f[2] ~= '' then
      local m = members[f[1]]
      if m then
        edit(rec, m[1], m[2], f[2])
      else
        local sep = ','
        if not has_members then sep = '' end
        edit(rec, members._close, members._close - 1, sep .. '"' .. f[1] .. '":' .. f[2])
        has_members = true
      end
    end
  end
else
  -- No result object (absent or null): write a whole one.
  local parts = {}
  for _, f in ipairs(fields) do
    local v = f[2]
    if v == '' then v = 'null' end
    table.insert(parts, '"' .. f[1] .. '":' .. v)
  end
  set_member(rec, 'result', '{' .. table.concat(parts, ',') .. '}')
end
set_member(rec, 'updated_at', ARGV[2])
commit(rec, tonumber(ARGV[1]))
return reply(rec, ARGV[3])
