-- unindex.lua: removes from one index set the task ids that do not belong there (no record,
-- an empty string, which is no record, a record of another service or user, or a member that
-- is no valid task id), checking and removing in one step so that a task saved meanwhile
-- keeps its entry. For the consistency repair.
--
-- KEYS[1] the index set
-- ARGV[1] what the index holds: 'tasks', 'service', 'service_user' or 'user'
-- ARGV[2] its service ('' when none)   ARGV[3] its user ('' when none)
-- ARGV[4..] the ids to check
-- Returns the number of ids removed.
local kind, want_service, want_user = ARGV[1], ARGV[2], ARGV[3]
read_checked('set', 'SCARD', KEYS[1])
local removed = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = record_key(id)
  local t = 'none'
  if valid_name(id) then t = redis.call('TYPE', key)['ok'] end
  local belongs = false
  if t == 'string' then
    local text = redis.call('GET', key)
    if text == '' then
      belongs = false
    elseif kind == 'tasks' then
      belongs = true
    else
      local service, user_id = record_owner(text)
      if service == nil or user_id == nil then
        belongs = true -- cannot tell: leave it
      elseif kind == 'service' then
        belongs = service == want_service
      elseif kind == 'service_user' then
        belongs = service == want_service and user_id == want_user
      elseif kind == 'user' then
        belongs = user_id == want_user
      end
    end
  elseif t ~= 'none' then
    belongs = true -- a key of another type: reported, never touched
  end
  if not belongs then removed = removed + redis.call('SREM', KEYS[1], id) end
end
return removed
