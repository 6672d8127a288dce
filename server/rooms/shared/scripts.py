"""The Lua scripts of shared rooms: each decides one change, records it and publishes its event.

Each room script is the twin of a decision of ``server.rooms.decisions`` and decides with the rules
of ``server/rooms/rules.lua`` (the twins of ``rules.py``). A room's ratings are stored by
``storage.redis`` as one JSON array per user; the scripts never parse that JSON to find or change a
rating, they find and splice the text Python wrote. A look-up key is `[<JSON of mediaId>,`: inside a
JSON string a quote is always escaped, so that text occurs only where an element for that item
starts.

KEYS of every room script: meta, ratings, progress, members, matches, online, seq; ARGV[1] is the
room's channel. Refusals are the values of ``rules.Refusal``.
"""

from __future__ import annotations

from pathlib import Path

RULES = (Path(__file__).parent.parent / "rules.lua").read_text("utf-8")

MECHANICS = """
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
local function emit(body)
  local seq = redis.call("INCR", KEYS[7])
  redis.call("PUBLISH", ARGV[1], '{"seq":' .. seq .. ',' .. body .. '}')
  return seq
end
-- Who liked an item, as a set; like_key is `[<mediaId>,"like",`, found only where that item's
-- element says "like".
local function likers(like_key)
  local liked_by = {}
  local fields = redis.call("HGETALL", KEYS[2])
  for i = 1, #fields, 2 do
    if string.find(fields[i + 1], like_key, 1, true) then liked_by[fields[i]] = true end
  end
  return liked_by
end
"""

# decide_join. KEYS[8]: this process's room set. ARGV: channel, name, presented token hash ("" for
# none), the new member as JSON, new token hash, avatar ("" for none), member limit, seat, process,
# public user JSON, room digest, "1" to re-seat (only a name nobody holds, never a new member).
JOIN = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local name, reseat = ARGV[2], ARGV[12] == "1"
local member = redis.call("HGET", KEYS[4], name)
if reseat and not member then return -1 end
local holder = redis.call("HGET", KEYS[6], name)
local token = member and cjson.decode(member).tokenHash
local refusal = may_join(redis.call("HLEN", KEYS[4]), member, tonumber(ARGV[7]),
  holder and cjson.decode(holder).seat ~= ARGV[8], not reseat and token == ARGV[3])
if refusal then return refusal end
if not reseat then
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

# decide_leave. ARGV: channel, name, seat, "1" when leaving for good, room type, now (ms).
LEAVE = """
local holder = redis.call("HGET", KEYS[6], ARGV[2])
if not holder or cjson.decode(holder).seat ~= ARGV[3] then return 0 end
redis.call("HDEL", KEYS[6], ARGV[2])
local matched = {}
if ARGV[4] == "1" then
  redis.call("HDEL", KEYS[4], ARGV[2])
  if ARGV[5] == "unanimous" then
    local ratings, already = {}, {}
    local fields = redis.call("HGETALL", KEYS[2])
    for i = 1, #fields, 2 do ratings[fields[i]] = cjson.decode(fields[i + 1]) end
    for _, media_id in ipairs(redis.call("HKEYS", KEYS[5])) do already[media_id] = true end
    matched = completed_by_leave(ARGV[5], ratings, already, redis.call("HKEYS", KEYS[4]))
    for _, media_id in ipairs(matched) do redis.call("HSET", KEYS[5], media_id, ARGV[6]) end
  end
end
return emit('"t":"leave","name":' .. cjson.encode(ARGV[2]) .. ',"seat":' .. cjson.encode(ARGV[3])
  .. ',"permanent":' .. tostring(ARGV[4] == "1") .. ',"matchedAt":' .. ARGV[6]
  .. ',"matched":' .. (#matched > 0 and cjson.encode(matched) or "[]"))
"""

# decide_rate. ARGV: channel, name, look-up key, element, mediaId, rating, now (ms), room type,
# threshold, "1" for EndOnFirstMatch, like key. Returns {1, seq, 1 if it made a new match} or {refusal}.
RATE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return {-1} end
if has_ended(ARGV[10] == "1", ARGV[8], redis.call("HGET", KEYS[2], ARGV[2]), redis.call("HLEN", KEYS[5])) then
  return {-4}
end
if not append_rating(KEYS[2], ARGV[2], ARGV[3], ARGV[4]) then return {0} end
local progress = count_rating(KEYS[3], ARGV[2], 1)
local matched_at, new = false, 0
if ARGV[6] == "like" and ARGV[8] ~= "solo" then
  matched_at = redis.call("HGET", KEYS[5], ARGV[5])
  if not matched_at and is_group_match(ARGV[8], tonumber(ARGV[9]), likers(ARGV[11]), redis.call("HKEYS", KEYS[4])) then
    redis.call("HSET", KEYS[5], ARGV[5], ARGV[7])
    matched_at, new = ARGV[7], 1
  end
end
local seq = emit('"t":"rate","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[5])
  .. ',"rating":"' .. ARGV[6] .. '","at":' .. ARGV[7] .. ',"progress":' .. progress
  .. (matched_at and (',"matchedAt":' .. matched_at) or ''))
return {1, seq, new}
"""

# decide_undo. ARGV: channel, name, look-up key, mediaId, room type, threshold, like key.
UNDO = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if not cut_rating(KEYS[2], ARGV[2], ARGV[3]) then return 0 end
local progress = count_rating(KEYS[3], ARGV[2], -1)
local removed = ARGV[5] ~= "solo" and redis.call("HEXISTS", KEYS[5], ARGV[4]) == 1
  and not is_group_match(ARGV[5], tonumber(ARGV[6]), likers(ARGV[7]), redis.call("HKEYS", KEYS[4]))
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

ROOM_SCRIPTS = {"join": JOIN, "leave": LEAVE, "rate": RATE, "undo": UNDO, "delete": DELETE}


def room_script(body: str) -> str:
    """A room script with what every room script uses before it."""
    return RULES + MECHANICS + body


# KEYS: the process index. ARGV: process id, timeout (ms). Returns the processes whose deadline passed.
HEARTBEAT = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
"""
