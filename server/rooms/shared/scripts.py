"""The Lua scripts of shared rooms: each decides and records one change and publishes its event.

A room's ratings are stored by ``storage.redis`` as one JSON array per user (see its layout); the
scripts never parse JSON there, they find and splice the text Python wrote.
"""

from __future__ import annotations

# The scripts never parse JSON: Python writes every array element and the look-up key, and the
# scripts find and splice text. A look-up key is `[<JSON of mediaId>,`: inside a JSON string a quote
# is always escaped, so that text occurs only where an element for that item starts.
RATING_FUNCTIONS = """
local function append_rating(key, user, lookup, element)
  local list = redis.call("HGET", key, user)
  if not list or list == "[]" then
    list = "[" .. element .. "]"
  elseif string.find(list, lookup, 1, true) then
    return false
  else
    list = string.sub(list, 1, -2) .. "," .. element .. "]"
  end
  redis.call("HSET", key, user, list)
  return true
end
-- An element has no "]" after its item id, so the first "]" past the look-up key ends it.
local function cut_rating(key, user, lookup)
  local list = redis.call("HGET", key, user)
  local start = list and string.find(list, lookup, 1, true)
  if not start then return false end
  local finish = string.find(list, "]", start + #lookup, true)
  local before, after = string.sub(list, 1, start - 1), string.sub(list, finish + 1)
  if string.sub(before, -1) == "," then
    before = string.sub(before, 1, -2)
  elseif string.sub(after, 1, 1) == "," then
    after = string.sub(after, 2)
  end
  redis.call("HSET", key, user, before .. after)
  return true
end
-- A snapshot may lack the user's progress: never below 0.
local function count_rating(key, user, delta)
  local count = redis.call("HINCRBY", key, user, delta)
  if count < 0 then
    redis.call("HSET", key, user, 0)
    count = 0
  end
  return count
end
"""
# KEYS: meta, ratings, progress. ARGV: user name, look-up key, the new element.
# -1: no such room; 0: the user had rated the item; 1: recorded.
ADD_RATING_SCRIPT = (
    RATING_FUNCTIONS
    + """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if not append_rating(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) then return 0 end
count_rating(KEYS[3], ARGV[1], 1)
return 1
"""
)
# KEYS and ARGV[1..2] as above.
REMOVE_RATING_SCRIPT = (
    RATING_FUNCTIONS
    + """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if not cut_rating(KEYS[2], ARGV[1], ARGV[2]) then return 0 end
count_rating(KEYS[3], ARGV[1], -1)
return 1
"""
)

# Shared by the room scripts. KEYS of every room script: meta, ratings, progress, members, matches,
# online, seq; ARGV[1] is the room's channel.
PRELUDE = """
local function emit(body)
  local seq = redis.call("INCR", KEYS[7])
  redis.call("PUBLISH", ARGV[1], '{"seq":' .. seq .. ',' .. body .. '}')
  return seq
end
local function liked(user, like_key)
  local list = redis.call("HGET", KEYS[2], user)
  return list and string.find(list, like_key, 1, true) ~= nil
end
-- protocol.md's group match rules; like_key is `[<mediaId>,"like",`, found only where that
-- item's element starts with a like (quotes inside ids are escaped).
local function is_match(room_type, threshold, like_key)
  if room_type == "standard" then
    local count = 0
    for _, list in ipairs(redis.call("HVALS", KEYS[2])) do
      if string.find(list, like_key, 1, true) then
        count = count + 1
        if count >= threshold then return true end
      end
    end
    return false
  end
  if room_type ~= "unanimous" then return false end
  local names = redis.call("HKEYS", KEYS[4])
  if #names < 2 then return false end
  for _, name in ipairs(names) do
    if not liked(name, like_key) then return false end
  end
  return true
end
"""

# KEYS[8]: this process's room set. ARGV: channel, name, presented token hash ("" for none), the
# new member as JSON, new token hash, avatar ("" for none), member limit, seat, process, public user
# JSON, room digest, "1" to re-seat (only a name nobody holds, never a new member).
JOIN = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local name = ARGV[2]
local member = redis.call("HGET", KEYS[4], name)
if ARGV[12] == "1" and not member then return -1 end
if not member and redis.call("HLEN", KEYS[4]) >= tonumber(ARGV[7]) then return -2 end
local holder = redis.call("HGET", KEYS[6], name)
if holder and cjson.decode(holder).seat ~= ARGV[8] then
  local token = member and cjson.decode(member).tokenHash
  if ARGV[12] == "1" or token ~= ARGV[3] then return -3 end
end
if ARGV[12] ~= "1" then
  if member then
    local fields = cjson.decode(member)
    fields.tokenHash = ARGV[5]
    fields.avatarImage = ARGV[6] ~= "" and ARGV[6] or nil
    member = cjson.encode(fields)
  else
    member = ARGV[4]
  end
  redis.call("HSET", KEYS[4], name, member)
end
redis.call("HSETNX", KEYS[3], name, 0)
local seat = '{"seat":' .. cjson.encode(ARGV[8]) .. ',"process":' .. cjson.encode(ARGV[9])
  .. ',"user":' .. ARGV[10] .. '}'
redis.call("HSET", KEYS[6], name, seat)
redis.call("SADD", KEYS[8], ARGV[11])
return emit('"t":"join","name":' .. cjson.encode(name) .. ',"member":' .. member .. ',"online":' .. seat
  .. ',"resumed":' .. tostring(holder ~= false) .. ',"progress":' .. redis.call("HGET", KEYS[3], name))
"""

# ARGV: channel, name, seat, "1" when leaving for good, room type, now (ms). Only the seat holding
# the name may leave; leaving for good can complete unanimous matches.
LEAVE = """
local holder = redis.call("HGET", KEYS[6], ARGV[2])
if not holder or cjson.decode(holder).seat ~= ARGV[3] then return 0 end
redis.call("HDEL", KEYS[6], ARGV[2])
local matched = {}
if ARGV[4] == "1" then
  redis.call("HDEL", KEYS[4], ARGV[2])
  local names = redis.call("HKEYS", KEYS[4])
  if ARGV[5] == "unanimous" and #names >= 2 then
    local likes = {}
    for _, name in ipairs(names) do
      local list = redis.call("HGET", KEYS[2], name)
      for _, element in ipairs(list and cjson.decode(list) or {}) do
        if element[2] == "like" then likes[element[1]] = (likes[element[1]] or 0) + 1 end
      end
    end
    for media_id, count in pairs(likes) do
      if count == #names and redis.call("HSETNX", KEYS[5], media_id, ARGV[6]) == 1 then
        table.insert(matched, media_id)
      end
    end
    table.sort(matched)
  end
end
return emit('"t":"leave","name":' .. cjson.encode(ARGV[2]) .. ',"seat":' .. cjson.encode(ARGV[3])
  .. ',"permanent":' .. tostring(ARGV[4] == "1") .. ',"matchedAt":' .. ARGV[6]
  .. ',"matched":' .. (#matched > 0 and cjson.encode(matched) or "[]"))
"""

# ARGV: channel, name, look-up key, element, mediaId, rating, now (ms), room type, threshold,
# "1" for EndOnFirstMatch, like key. Returns {1, seq, 1 if it made a new match} or a refusal.
RATE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return {-1} end
local list = redis.call("HGET", KEYS[2], ARGV[2])
if ARGV[10] == "1" then
  if ARGV[8] == "solo" then
    if list and string.find(list, ',"like",', 1, true) then return {-4} end
  elseif redis.call("HLEN", KEYS[5]) > 0 then
    return {-4}
  end
end
if not append_rating(KEYS[2], ARGV[2], ARGV[3], ARGV[4]) then return {0} end
local progress = count_rating(KEYS[3], ARGV[2], 1)
local matched_at, new = false, 0
if ARGV[6] == "like" and ARGV[8] ~= "solo" then
  matched_at = redis.call("HGET", KEYS[5], ARGV[5])
  if not matched_at and is_match(ARGV[8], tonumber(ARGV[9]), ARGV[11]) then
    redis.call("HSET", KEYS[5], ARGV[5], ARGV[7])
    matched_at, new = ARGV[7], 1
  end
end
local seq = emit('"t":"rate","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[5])
  .. ',"rating":"' .. ARGV[6] .. '","at":' .. ARGV[7] .. ',"progress":' .. progress
  .. (matched_at and (',"matchedAt":' .. matched_at) or ''))
return {1, seq, new}
"""

# ARGV: channel, name, look-up key, mediaId, room type, threshold, like key.
UNDO = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if not cut_rating(KEYS[2], ARGV[2], ARGV[3]) then return 0 end
local progress = count_rating(KEYS[3], ARGV[2], -1)
local removed = ARGV[5] ~= "solo" and redis.call("HEXISTS", KEYS[5], ARGV[4]) == 1
  and not is_match(ARGV[5], tonumber(ARGV[6]), ARGV[7])
if removed then redis.call("HDEL", KEYS[5], ARGV[4]) end
return emit('"t":"undo","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[4])
  .. ',"progress":' .. progress .. ',"matchRemoved":' .. tostring(removed))
"""

# KEYS[8], KEYS[9]: the room index and names. ARGV: channel, digest.
DELETE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call("ZREM", KEYS[8], ARGV[2])
redis.call("HDEL", KEYS[9], ARGV[2])
return emit('"t":"delete"')
"""

# KEYS: the process index. ARGV: process id, timeout (ms). Returns the processes whose deadline passed.
HEARTBEAT = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
"""
