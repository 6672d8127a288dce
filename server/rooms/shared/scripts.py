"""The Lua scripts of shared rooms: each decides one change, records it and publishes its event.

Each room script is the twin of a decision of ``server.rooms.decisions`` and decides with the rules
of ``server/rooms/rules.lua`` (the twins of ``rules.py``). A room's ratings are stored by
``storage.redis`` as one JSON array per user; the scripts never parse that JSON to find or change a
rating, they find and splice the text Python wrote. A look-up key is `[<JSON of mediaId>,`: inside a
JSON string a quote is always escaped, so that text occurs only where an element for that item
starts.

KEYS of every room script: meta, ratings, progress, members, matches, online, seq, owner, removed,
deck, opened, pick (``RedisLive._room_keys``); ARGV[1] is the room's channel. Refusals are the
values of ``rules.Refusal``. A presence entry (``online``) is
``{"user":<public user>,"seats":{<seat>:<process>}}``, written as text so the user's JSON is never
decoded and encoded again (an empty list would come back as ``{}``).
"""

from __future__ import annotations

from pathlib import Path

from storage.redis import DECK_CHUNK, RELEASE_JOIN_CODE

from ..decisions import SEAT_OFFER_MS

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
local function emitted(body)
  local seq = redis.call("INCR", KEYS[7])
  local event = '{"seq":' .. seq .. ',' .. body .. '}'
  redis.call("PUBLISH", ARGV[1], event)
  return seq, event
end
local function emit(body)
  local seq = emitted(body)
  return seq
end
-- A presence entry's user (as its JSON text) and seats (decoded). A user's JSON holds no unescaped
-- `,"seats":`, so the first one found ends it.
local function presence_parts(raw)
  local at = string.find(raw, ',"seats":', 1, true)
  return string.sub(raw, 9, at - 1), cjson.decode(string.sub(raw, at + 9, -2))
end
local function presence(user_json, seats)
  return '{"user":' .. user_json .. ',"seats":' .. cjson.encode(seats) .. '}'
end
local function room_owner(derived)
  local owner = redis.call("GET", KEYS[8])
  if not owner or owner == "" then return derived end
  return owner
end
local function members_decoded()
  local decoded, names = {}, {}
  local fields = redis.call("HGETALL", KEYS[4])
  for i = 1, #fields, 2 do
    decoded[fields[i]] = cjson.decode(fields[i + 1])
    table.insert(names, fields[i])
  end
  table.sort(names)
  return decoded, names
end
local function unanimous_completed(room_type, at)
  if room_type ~= "unanimous" then return {} end
  local ratings, already = {}, {}
  local fields = redis.call("HGETALL", KEYS[2])
  for i = 1, #fields, 2 do ratings[fields[i]] = cjson.decode(fields[i + 1]) end
  for _, media_id in ipairs(redis.call("HKEYS", KEYS[5])) do already[media_id] = true end
  local matched = completed_by_leave(room_type, ratings, already, redis.call("HKEYS", KEYS[4]))
  for _, media_id in ipairs(matched) do redis.call("HSET", KEYS[5], media_id, at) end
  return matched
end
local function listed(items)
  return #items > 0 and cjson.encode(items) or "[]"
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

# decide_join. KEYS[13]: this process's room set. ARGV: channel, name, identity ("" for none),
# skeleton, seat, process, presented token hash, seat code hash, new token hash, avatar, Plex user id,
# now (ms), member limit, absence (ms), the owner the caller derives, "1" to re-seat, the public
# user's JSON after its userName (`"permissions":[...],...`, or ""), room digest.
JOIN = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local name, skel, seat = ARGV[2], ARGV[4], ARGV[5]
local identity = ARGV[3] ~= "" and ARGV[3] or nil
local now, reseat = tonumber(ARGV[12]), ARGV[16] == "1"
if redis.call("HEXISTS", KEYS[9], ban_key(identity, skel)) == 1 then return -5 end
local members, names = members_decoded()
local found, offered = nil, false
if ARGV[8] ~= "" then
  for _, n in ipairs(names) do
    local m = members[n]
    if not found and m.offerHash == ARGV[8] and (m.offerUntil or 0) >= now then found, offered = n, true end
  end
  if not found then return -3 end
end
if not found and identity then
  for _, n in ipairs(names) do
    if not found and members[n].identity == identity then found = n end
  end
end
if not found and members[name] then found = name end
if not found then
  for _, n in ipairs(names) do
    if not found and members[n].skeleton == skel then found = n end
  end
end
local member, how
local raw = found and redis.call("HGET", KEYS[6], found)
local seats = {}
if raw then seats = select(2, presence_parts(raw)) end
if not found then
  if reseat then return -1 end
  local present = 0
  for _, n in ipairs(names) do
    local m = members[n]
    local seen = m.seenAt
    if not seen or seen == 0 then seen = m.joinedAt end
    if counts_as_present(redis.call("HEXISTS", KEYS[6], n) == 1, seen, now, tonumber(ARGV[14])) then
      present = present + 1
    end
  end
  if present >= tonumber(ARGV[13]) then return -2 end
  found, how = name, "beside"
  member = {joinedAt = now, identity = identity, skeleton = skel, seenAt = now,
    plexUserId = ARGV[11] ~= "" and ARGV[11] or nil}
elseif reseat then
  member, how = members[found], "beside"
else
  member = members[found]
  local elsewhere = false
  for other in pairs(seats) do
    if other ~= seat then elsewhere = true end
  end
  how = seating(member.identity, identity, member.tokenHash ~= nil and member.tokenHash == ARGV[7], elsewhere, offered)
  if not how then return -3 end
end
local owner = nil
if not reseat then
  member.tokenHash = ARGV[9] ~= "" and ARGV[9] or nil
  member.avatarImage = ARGV[10] ~= "" and ARGV[10] or nil
  member.seenAt = now
  if how == "claimed" then
    local own_skeleton = member.skeleton or ""
    if own_skeleton == "" then own_skeleton = skel end
    member.identity, member.offerHash, member.offerUntil = identity, nil, nil
    if identity and room_owner(ARGV[15]) == NAME_OWNER .. own_skeleton then
      owner = identity
      redis.call("SET", KEYS[8], owner)
    end
  end
  if not member.skeleton or member.skeleton == "" then member.skeleton = skel end
end
local member_json = cjson.encode(member)
redis.call("HSET", KEYS[4], found, member_json)
redis.call("HSETNX", KEYS[3], found, 0)
if how ~= "beside" then seats = {} end
seats[seat] = ARGV[6]
local user = '{"userName":' .. cjson.encode(found) .. (ARGV[17] ~= "" and (',' .. ARGV[17]) or '') .. '}'
redis.call("HSET", KEYS[6], found, presence(user, seats))
redis.call("SADD", KEYS[13], ARGV[18])
if not reseat then redis.call("SET", KEYS[11], ARGV[19]) end
return emit('"t":"join","name":' .. cjson.encode(found) .. ',"member":' .. member_json .. ',"seat":'
  .. cjson.encode(seat) .. ',"process":' .. cjson.encode(ARGV[6]) .. ',"user":' .. user
  .. ',"resumed":' .. tostring(raw ~= nil and raw ~= false) .. ',"replaces":' .. tostring(how ~= "beside")
  .. ',"progress":' .. redis.call("HGET", KEYS[3], found) .. (owner and (',"owner":' .. cjson.encode(owner)) or ''))
"""

# decide_leave. ARGV: channel, name, seat, "1" when leaving for good, room type, now (ms).
LEAVE = """
local raw = redis.call("HGET", KEYS[6], ARGV[2])
if not raw then return 0 end
local user, seats = presence_parts(raw)
if not seats[ARGV[3]] then return 0 end
local matched = {}
if ARGV[4] == "1" then
  redis.call("HDEL", KEYS[6], ARGV[2])
  redis.call("HDEL", KEYS[4], ARGV[2])
  matched = unanimous_completed(ARGV[5], ARGV[6])
else
  seats[ARGV[3]] = nil
  if next(seats) == nil then
    redis.call("HDEL", KEYS[6], ARGV[2])
    local member = redis.call("HGET", KEYS[4], ARGV[2])
    if member then
      member = cjson.decode(member)
      member.seenAt = tonumber(ARGV[6])
      redis.call("HSET", KEYS[4], ARGV[2], cjson.encode(member))
    end
  else
    redis.call("HSET", KEYS[6], ARGV[2], presence(user, seats))
  end
end
return emit('"t":"leave","name":' .. cjson.encode(ARGV[2]) .. ',"seat":' .. cjson.encode(ARGV[3])
  .. ',"permanent":' .. tostring(ARGV[4] == "1") .. ',"at":' .. ARGV[6] .. ',"matched":' .. listed(matched))
"""

# decide_member_action. ARGV: channel, action, member name, actor identity ("" for none), actor
# skeleton, the name the actor's connection is seated as ("" for none), seat code hash, the owner
# the caller derives, now (ms), room type, the skeleton of the member's name.
MANAGE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local seated = ARGV[6] ~= "" and redis.call("HEXISTS", KEYS[6], ARGV[6]) == 1
if not is_owner(room_owner(ARGV[8]), ARGV[4] ~= "" and ARGV[4] or nil, ARGV[5], seated) then return -6 end
local action, name, now = ARGV[2], ARGV[3], tonumber(ARGV[9])
if action == "readmit" then
  local fields, bans = redis.call("HGETALL", KEYS[9]), {}
  for i = 1, #fields, 2 do
    if fields[i + 1] == name then table.insert(bans, fields[i]) end
  end
  if #bans == 0 then return -7 end
  table.sort(bans)
  redis.call("HDEL", KEYS[9], bans[1])
  return emit('"t":"readmit","ban":' .. cjson.encode(bans[1]))
end
local member = redis.call("HGET", KEYS[4], name)
if not member then return -7 end
member = cjson.decode(member)
local own_skeleton = member.skeleton or ""
if own_skeleton == "" then own_skeleton = ARGV[11] end
if action == "remove" then
  local ban = ban_key(member.identity, own_skeleton)
  redis.call("HDEL", KEYS[6], name)
  redis.call("HDEL", KEYS[4], name)
  redis.call("HSET", KEYS[9], ban, name)
  local matched = unanimous_completed(ARGV[10], ARGV[9])
  return emit('"t":"remove","name":' .. cjson.encode(name) .. ',"ban":' .. cjson.encode(ban) .. ',"at":' .. ARGV[9]
    .. ',"matched":' .. listed(matched))
end
if action == "makeOwner" then
  local owner = ban_key(member.identity, own_skeleton)
  redis.call("SET", KEYS[8], owner)
  return emit('"t":"owner","owner":' .. cjson.encode(owner))
end
member.offerHash, member.offerUntil = ARGV[7], now + SEAT_OFFER_MS
redis.call("HSET", KEYS[4], name, cjson.encode(member))
return emit('"t":"offer","name":' .. cjson.encode(name) .. ',"offer_hash":' .. cjson.encode(ARGV[7])
  .. ',"until":' .. (now + SEAT_OFFER_MS))
"""

# decide_rate. ARGV: channel, name, look-up key, element, mediaId, rating, now (ms), room type,
# threshold, match limit (0: none), like key, end time (ms, 0: none), like cap (0: none).
# Returns {1, seq, 1 if it made a new match} or {refusal}.
RATE = """
if redis.call("EXISTS", KEYS[1]) == 0 then return {-1} end
if redis.call("HEXISTS", KEYS[4], ARGV[2]) == 0 then return {-7} end
local own = redis.call("HGET", KEYS[2], ARGV[2])
if end_reason(tonumber(ARGV[10]), tonumber(ARGV[12]), tonumber(ARGV[7]), ARGV[8], own, redis.call("HLEN", KEYS[5])) then
  return {-4}
end
if own and string.find(own, ARGV[3], 1, true) then return {0} end
if ARGV[6] == "like" and like_cap_reached(tonumber(ARGV[13]), own) then return {-8} end
append_rating(KEYS[2], ARGV[2], ARGV[3], ARGV[4])
local progress = count_rating(KEYS[3], ARGV[2], 1)
local matched_at, new = false, 0
if ARGV[6] == "like" and ARGV[8] ~= "solo" then
  matched_at = redis.call("HGET", KEYS[5], ARGV[5])
  if not matched_at and is_group_match(ARGV[8], tonumber(ARGV[9]), likers(ARGV[11]), redis.call("HKEYS", KEYS[4])) then
    redis.call("HSET", KEYS[5], ARGV[5], ARGV[7])
    matched_at, new = ARGV[7], 1
  end
end
local seq, event = emitted('"t":"rate","name":' .. cjson.encode(ARGV[2]) .. ',"mediaId":' .. cjson.encode(ARGV[5])
  .. ',"rating":"' .. ARGV[6] .. '","at":' .. ARGV[7] .. ',"progress":' .. progress
  .. (matched_at and (',"matchedAt":' .. matched_at) or ''))
return {1, seq, new, event}
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

# decide_pick. ARGV: channel, the match picked, actor identity ("" for none), actor skeleton, the
# name the actor's connection is seated as ("" for none), the owner the caller derives, now (ms).
PICK = """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
if ARGV[5] == "" or redis.call("HEXISTS", KEYS[4], ARGV[5]) == 0 then return -7 end
if redis.call("HEXISTS", KEYS[5], ARGV[2]) == 0 then return 0 end
if redis.call("EXISTS", KEYS[12]) == 1 then
  local seated = redis.call("HEXISTS", KEYS[6], ARGV[5]) == 1
  if not is_owner(room_owner(ARGV[6]), ARGV[3] ~= "" and ARGV[3] or nil, ARGV[4], seated) then return -6 end
end
redis.call("SET", KEYS[12], '{"mediaId":' .. cjson.encode(ARGV[2]) .. ',"at":' .. ARGV[7] .. '}')
return emit('"t":"pick","mediaId":' .. cjson.encode(ARGV[2]) .. ',"at":' .. ARGV[7])
"""

# decide_delete. KEYS[13], KEYS[14], KEYS[15]: the room index, names and join codes. ARGV: channel,
# digest, actor identity ("" for none), actor skeleton, the name the actor's connection is seated as
# ("" for none), the owner the caller derives.
DELETE = (
    RELEASE_JOIN_CODE
    + """
if redis.call("EXISTS", KEYS[1]) == 0 then return -1 end
local seated = ARGV[5] ~= "" and redis.call("HEXISTS", KEYS[6], ARGV[5]) == 1
if not is_owner(room_owner(ARGV[6]), ARGV[3] ~= "" and ARGV[3] or nil, ARGV[4], seated) then return -6 end
release_join_code(KEYS[1], KEYS[15], ARGV[2])
redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[8], KEYS[9], KEYS[10], KEYS[11],
  KEYS[12])
redis.call("ZREM", KEYS[13], ARGV[2])
redis.call("HDEL", KEYS[14], ARGV[2])
return emit('"t":"delete"')
"""
)

# Replacing the deck and settings (a standing room following its definition or its library), unless
# the room changed since it was read: another event, or a join code given meanwhile (which the new
# meta would drop). ARGV: channel, the event number the room must still be at, meta, owner, then
# for progress and matches their field count and fields and values, then the deck's length and ids.
REPLACE = f"""
local meta = redis.call("GET", KEYS[1])
if not meta then return -1 end
if tonumber(redis.call("GET", KEYS[7]) or "0") ~= tonumber(ARGV[2]) then return 0 end
local code = '"joinCode":'
if string.find(meta, code, 1, true) and not string.find(ARGV[3], code, 1, true) then return 0 end
redis.call("SET", KEYS[1], ARGV[3])
redis.call("SET", KEYS[8], ARGV[4])
local at = 5
for _, key in ipairs({{KEYS[3], KEYS[5]}}) do
  redis.call("DEL", key)
  local count = tonumber(ARGV[at])
  for i = 1, count do
    redis.call("HSET", key, ARGV[at + 2 * i - 1], ARGV[at + 2 * i])
  end
  at = at + 1 + 2 * count
end
redis.call("DEL", KEYS[10])
local last = at + tonumber(ARGV[at])
for first = at + 1, last, {DECK_CHUNK} do
  redis.call("RPUSH", KEYS[10], unpack(ARGV, first, math.min(first + {DECK_CHUNK - 1}, last)))
end
return emit('"t":"deck"')
"""

ROOM_SCRIPTS = {
    "join": JOIN,
    "leave": LEAVE,
    "manage": MANAGE,
    "pick": PICK,
    "rate": RATE,
    "undo": UNDO,
    "delete": DELETE,
    "replace": REPLACE,
}


def room_script(body: str) -> str:
    """A room script with what every room script uses before it."""
    return RULES + f"local SEAT_OFFER_MS = {SEAT_OFFER_MS}\n" + MECHANICS + body


# KEYS: the process index. ARGV: process id, timeout (ms). Returns the processes whose deadline passed.
HEARTBEAT = """
local now = redis.call("TIME")
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now)
"""
