-- lib/errors.lua: how the scripts fail, and the read calls that check a key's type.
--
-- Every script reads and checks everything it needs before its first write, so that an error
-- leaves the store as it was (Redis does not roll back a script that fails half-way).

local byte, find, sub, match, gsub = string.byte, string.find, string.sub, string.match, string.gsub

-- Raises a typed error: kind, key and detail separated by \031 (unit separator), which no
-- name of the layout contains, so that the client finds them whatever Redis wraps around the
-- message (Redis 6.2 and 7 wrap it differently). A string error at level 0 works on every
-- version; an error table does not on 6.2.
--   TSDECODE    key  reason     the record cannot be read as a task record
--   TSWRONGTYPE key  expected   a key of the layout holds another type
--   TSINVALID   name reason     an argument is out of range (nothing was read)
local function fail(kind, key, reason)
  error(kind .. '\031' .. key .. '\031' .. reason .. '\031', 0)
end

-- redis.pcall of a read command on key, which must hold `expected` (or not exist). A reply of
-- WRONGTYPE becomes TSWRONGTYPE naming the key; any other error (a server that refuses, say)
-- is raised again unchanged, so that the client sees its real cause.
local function read_checked(expected, command, key, ...)
  local reply = redis.pcall(command, key, ...)
  if type(reply) == 'table' and reply.err then
    if find(reply.err, '^WRONGTYPE') then fail('TSWRONGTYPE', key, expected) end
    error(reply.err, 0)
  end
  return reply
end
