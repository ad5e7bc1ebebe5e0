"""Blacklight's one Lua call per update (`blacklight_store.py` sends it): append the stored queries to the model's
log, count them for the client, link the clients whose queries matched, apply the flag rule to the client and to
its group. One script, so that the counters, links and groups of concurrent updates from several oracle processes
never interleave.
"""

# ARGV: 1 log key, 2 its token's key, 3 the time (ms), 4 the oldest live time (ms), 5 the cap, 6 when the keys
# expire (unix s), 7 client, 8 the client's counters key, 9 "client epoch", 10 flag_matches, 11 flag_window,
# 12 detect prefix ("{prefix}:detect:"), 13 model, 14 the most hashes a query shared, 15 the groups' key prefix
# ('' without groups); then two ARGV per query: "1" to store it or "0" (a re-send) followed by the "client epoch"
# whose query it matched ('' none), and its record (the 8-byte id and hashes; '' for a re-send). Returns {1 stored,
# 0 re-send, -1 over the cap per query}, the client's queries before this call, the position of a new alarm or -1,
# and the other members of a group whose rule fired, each followed by its queries.
SCRIPT = """
local log, token, now, cutoff, cap, expire_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local client, stats, me = ARGV[7], ARGV[8], ARGV[9]
local k, W, detect, model = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12], ARGV[13]
local max_shared, groups = tonumber(ARGV[14]), ARGV[15]
redis.call('XTRIM', log, 'MINID', cutoff)
local length = redis.call('XLEN', log)
local id_ms = now
local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
if top then  -- ids must grow: a clock that stepped back writes at the last entry's time
  local t = string.match(top[1], '^(%d+)')
  if tonumber(t) > tonumber(id_ms) then id_ms = t end
end
-- Groups: a union-find over "client epoch" nodes, linked when one's query matched another's; per root: its queries
-- since each member joined, the positions (on that count) of its last k matches between two of its clients, its
-- members (at most 1,000) and, once the rule fired, flagged.
local parent = groups .. 'parent'
local function find(node)
  local hops = 0
  local p = redis.call('HGET', parent, node)
  while p and p ~= node and hops < 64 do
    node = p
    p = redis.call('HGET', parent, node)
    hops = hops + 1
  end
  return node
end
local function touch(root)
  for _, key in ipairs({groups .. root, groups .. root .. ':recent', groups .. root .. ':members'}) do
    redis.call('EXPIREAT', key, expire_at)
  end
end
local function union(a, b)  -- the larger group's root stays root
  local ka, kb = groups .. a, groups .. b
  redis.call('SADD', ka .. ':members', a)
  redis.call('SADD', kb .. ':members', b)
  if redis.call('SCARD', ka .. ':members') < redis.call('SCARD', kb .. ':members') then a, b, ka, kb = b, a, kb, ka end
  redis.call('HSET', parent, b, a)
  redis.call('EXPIREAT', parent, expire_at)
  redis.call('HINCRBY', ka, 'queries', tonumber(redis.call('HGET', kb, 'queries') or '0'))
  local flagged_b = redis.call('HGET', kb, 'flagged')
  if flagged_b and not redis.call('HGET', ka, 'flagged') then redis.call('HSET', ka, 'flagged', flagged_b) end
  if redis.call('SCARD', ka .. ':members') < 1000 then
    redis.call('SUNIONSTORE', ka .. ':members', ka .. ':members', kb .. ':members')
  end
  redis.call('DEL', kb, kb .. ':recent', kb .. ':members')
  touch(a)
  return a
end
local before = tonumber(redis.call('HGET', stats, 'queries') or '0')
local recent_key = stats .. ':recent'
local status, matched, matched_other, alarm, group_alarm = {}, 0, 0, -1, ''
for q = 16, #ARGV, 2 do
  local head, rec = ARGV[q], ARGV[q + 1]
  local node = string.sub(head, 2)
  local owner = string.match(node, '^(.*) [^ ]*$') or ''
  local position = before + (q - 14) / 2
  if owner ~= '' then
    matched = matched + 1
    if owner ~= client then
      matched_other = matched_other + 1
      local linked = stats .. ':linked'
      if redis.call('SCARD', linked) < 64 then redis.call('SADD', linked, owner) end
      local theirs = detect .. owner .. ':' .. model .. ':blacklight:linked'
      if redis.call('SCARD', theirs) < 64 then redis.call('SADD', theirs, client) end
    end
    redis.call('HSETNX', stats, 'first_match_at', position)
    redis.call('LPUSH', recent_key, position)
    redis.call('LTRIM', recent_key, 0, k - 1)
    local kth = tonumber(redis.call('LINDEX', recent_key, k - 1) or '-1')
    if alarm < 0 and kth >= 0 and position - kth < W then alarm = position end
  end
  if groups ~= '' then
    local root = find(me)
    local count = redis.call('HINCRBY', groups .. root, 'queries', 1)
    if owner ~= '' and owner ~= client then
      local theirs = find(node)
      if theirs ~= root then root = union(root, theirs) end
      count = tonumber(redis.call('HGET', groups .. root, 'queries'))
      local recent = groups .. root .. ':recent'
      redis.call('LPUSH', recent, count)
      redis.call('LTRIM', recent, 0, k - 1)
      local kth = tonumber(redis.call('LINDEX', recent, k - 1) or '-1')
      if kth >= 0 and count - kth < W and not redis.call('HGET', groups .. root, 'flagged') then
        redis.call('HSET', groups .. root, 'flagged', count)
        group_alarm = root
      end
      touch(root)
    elseif count == 1 then
      touch(root)
    end
    if alarm < 0 and redis.call('HGET', groups .. root, 'flagged') then alarm = position end
  end
  if string.sub(head, 1, 1) ~= '1' then
    status[#status + 1] = 0
  elseif length >= cap then
    status[#status + 1] = -1
  else
    redis.call('XADD', log, id_ms .. '-*', 'c', me, 'f', rec)
    length = length + 1
    status[#status + 1] = 1
  end
end
if redis.call('EXISTS', log) == 1 then redis.call('EXPIREAT', log, expire_at) end
redis.call('EXPIREAT', token, expire_at)
redis.call('HINCRBY', stats, 'queries', (#ARGV - 15) / 2)
if matched > 0 then
  redis.call('HINCRBY', stats, 'matched', matched)
  redis.call('HINCRBY', stats, 'matched_other', matched_other)
  local old = tonumber(redis.call('HGET', stats, 'max_shared') or '0')
  if max_shared > old then redis.call('HSET', stats, 'max_shared', max_shared) end
end
-- The members of a group whose rule fired in this call, each with its queries of the model so far (current epochs
-- only: a client cleared since it joined is not flagged for what it did before)
local members = {}
if group_alarm ~= '' then
  for _, m in ipairs(redis.call('SMEMBERS', groups .. group_alarm .. ':members')) do
    local c, e = string.match(m, '^(.*) ([^ ]*)$')
    if c and c ~= client and (redis.call('HGET', detect .. c, 'blacklight_epoch') or '0') == e then
      members[#members + 1] = c
      members[#members + 1] = redis.call('HGET', detect .. c .. ':' .. model .. ':blacklight', 'queries') or '0'
    end
  end
end
return {status, before, alarm, members}
"""
