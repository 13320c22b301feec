-- prune.lua: removes from one index set the members whose task no longer exists, for the
-- reconciler. Checking and removing in one script means a task created meanwhile is never
-- removed from its index.
--
-- KEYS[1] the index set
-- ARGV[1] 'tasks' (members are task ids: removed when task:{id} is gone or an empty
--         string, which is no record) or 'users:{service}' (members are user ids of
--         index:service:{service}:users: removed when index:service:{service}:user:{user}
--         is empty). A member that is no valid name ('', 'a:b') is removed: no task has it.
-- ARGV[2..] the members to check
-- Returns the number of members removed.
local removed = 0
local mode = ARGV[1]
local service = string.match(mode, '^users:(.*)$')
for i = 2, #ARGV do
  local member = ARGV[i]
  local gone = not valid_name(member)
  if gone then
    -- no key is built from it
  elseif service then
    gone = redis.call('SCARD', service_user_index(service, member)) == 0
  else
    gone = not holds_record(record_key(member))
  end
  if gone then removed = removed + redis.call('SREM', KEYS[1], member) end
end
return removed
