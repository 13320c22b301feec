-- lib/layout.lua: the key names of the layout and the rule for TTLs: a write only ever
-- extends a key's TTL, never shortens it.
--
-- The names and limits are task_state_core::layout's: each marker below (a constant's name
-- between two @) is replaced by the value of the Rust constant when scripts.rs builds the
-- scripts, so that each is written down once.

local TASK_PREFIX, METADATA_SUFFIX = '@TASK_PREFIX@', '@METADATA_SUFFIX@'
local TASK_INDEX = '@TASK_INDEX@'
local SERVICE_PREFIX, USER_PREFIX = '@SERVICE_PREFIX@', '@USER_PREFIX@'
local USERS_SUFFIX, USER_INFIX = '@USERS_SUFFIX@', '@USER_INFIX@'
-- How long the metadata hash outlives the record, in milliseconds: long enough for the expiry
-- cleanup to read which indexes hold the id.
local METADATA_GRACE_MS = @METADATA_GRACE_MS@
-- How much longer than its record an index is kept, in milliseconds. Redis does not read the
-- clock the same way for every expiry command of a script (SET's PX and PEXPIRE can differ by
-- the time the script has run), so an index given exactly the record's TTL could expire a few
-- milliseconds before it.
local INDEX_MARGIN_MS = @INDEX_MARGIN_MS@
-- How far past what it needs a key of the task (an index set, the metadata hash) is given
-- when it must be refreshed: a tenth of the record's TTL, at most an hour. The writes that
-- follow within that headroom find the key's PTTL still covering their record and do not
-- write it again (see refresh_ttl).
local REFRESH_HEADROOM_MAX_MS = @REFRESH_HEADROOM_MAX_MS@
local function refresh_headroom(ttl)
  if ttl == -1 then return 0 end
  return math.min(math.floor(ttl / 10), REFRESH_HEADROOM_MAX_MS)
end
-- The longest TTL a script accepts, in seconds (100 years of 365.25 days): Redis refuses
-- expiry times that overflow, and a refusal half-way through a script would leave it half done.
local MAX_TTL_SECONDS = @MAX_TTL_SECONDS@

local function record_key(id) return TASK_PREFIX .. id end
local function metadata_key(id) return TASK_PREFIX .. id .. METADATA_SUFFIX end

-- Whether a record key holds a record: a missing key and an empty string do not (Python's
-- `if not raw: return None`); a key of another type does, so that it is left alone.
local function holds_record(key)
  local t = redis.call('TYPE', key)['ok']
  return t ~= 'none' and (t ~= 'string' or redis.call('STRLEN', key) > 0)
end

-- The five index sets of a task of service and user_id, by name, each with the member the
-- task puts there; ORDER lists the names in the order they are written.
local INDEX_ORDER = {'tasks', 'service', 'service_users', 'service_user', 'user'}
local function indexes_of(id, service, user_id)
  local service_key = SERVICE_PREFIX .. service
  return {
    tasks = {key = TASK_INDEX, member = id},
    service = {key = service_key, member = id},
    service_users = {key = service_key .. USERS_SUFFIX, member = user_id},
    service_user = {key = service_key .. USER_INFIX .. user_id, member = id},
    user = {key = USER_PREFIX .. user_id, member = id},
  }
end

-- index:service:{service}:user:{user_id}, the ids of a user's tasks in a service.
local function service_user_index(service, user_id)
  return SERVICE_PREFIX .. service .. USER_INFIX .. user_id
end

-- The task id of a record key.
local function task_id_of(key)
  return sub(key, #TASK_PREFIX + 1)
end

-- ARGV's ttl in seconds, checked before anything is read or written.
local function checked_ttl(text)
  local ttl = tonumber(text)
  if not ttl or ttl < 1 or ttl > MAX_TTL_SECONDS or ttl ~= math.floor(ttl) then
    fail('TSINVALID', 'ttl', 'must be a whole number of seconds from 1 to ' .. MAX_TTL_SECONDS)
  end
  return ttl * 1000
end

-- What PTTL answers for a key, read before the script writes it: -2 (absent), -1 (no TTL) or
-- the milliseconds left. A target of -1 means "never expires".
local function longer_ttl(current, target)
  if current == -1 or target == -1 then return -1 end
  if current > target then return current end
  return target
end

-- Gives key, whose PTTL before the script's writes was current, a TTL of at least need (-1:
-- never expires): where current falls short of need (or the key is new), need plus the
-- headroom of lib/layout.lua; else it is left as it is. It never shortens a TTL, and writes
-- nothing when the key already lives long enough: the PTTL read is the truth, whatever
-- other writers did to the key since.
local function refresh_ttl(key, current, need, headroom)
  if need == -1 then
    if current >= 0 then redis.call('PERSIST', key) end
  elseif current == -2 or (current >= 0 and current < need) then
    redis.call('PEXPIRE', key, need + headroom)
  end
end

-- Gives key, which the script has just written, the TTL target unless that would shorten
-- the TTL it had before (current, from PTTL before the write). A key the script created
-- (current -2) has no TTL yet and gets target.
local function extend_ttl(key, current, target)
  if target == -1 then
    if current >= 0 then redis.call('PERSIST', key) end
  elseif current == -2 or (current >= 0 and current < target) then
    redis.call('PEXPIRE', key, target)
  end
end
