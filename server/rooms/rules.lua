-- The rules of a room, for the scripts of shared rooms (server/rooms/shared/scripts.py). Each function
-- is the twin of the function of the same name in rules.py, beside this file: change both together.
-- tests/test_room_rules.py runs both on the same random histories and compares what they decide.

-- Room types that match like "standard" ("async" is the storage fork's name for it).
local STANDARD_TYPES = {standard = true, async = true}

-- liked_by: a set (name -> true) of who liked the item; members: a list of names.
local function is_group_match(room_type, threshold, liked_by, members)
  if STANDARD_TYPES[room_type] then
    local count = 0
    for _ in pairs(liked_by) do count = count + 1 end
    return count >= threshold
  end
  if room_type ~= "unanimous" or #members < 2 then return false end
  for _, member in ipairs(members) do
    if not liked_by[member] then return false end
  end
  return true
end

-- own_ratings: the user's ratings array as stored (text), or false; match_count: the room's matches.
local function has_ended(end_on_first_match, room_type, own_ratings, match_count)
  if not end_on_first_match then return false end
  if room_type == "solo" then
    -- Quotes inside ids are escaped, so `,"like",` is found only where an element says "like".
    return own_ratings and string.find(own_ratings, ',"like",', 1, true) ~= nil
  end
  return match_count > 0
end

local NAME_OWNER = "name:"

-- identity: nil for a name-only login.
local function ban_key(identity, skeleton)
  return identity or (NAME_OWNER .. skeleton)
end

local function is_owner(owner, identity, skeleton, seated)
  if owner == "" then return false end
  if identity and owner == identity then return true end
  return seated and owner == NAME_OWNER .. skeleton
end

local function counts_as_present(online, seen_at, now, absence_ms)
  return online or now - seen_at < absence_ms
end

-- Returns "beside", "instead", "claimed" (rules.py's Seating), or nil.
local function seating(member_identity, identity, token_matches, elsewhere, offered)
  if offered then return "claimed" end
  if member_identity then
    if identity == member_identity then return "beside" end
    return nil
  end
  if identity then
    if token_matches then return "claimed" end
    return nil
  end
  if token_matches or not elsewhere then return "instead" end
  return nil
end

-- ratings: user -> that user's ratings as decoded arrays; matched: a set of matched ids.
local function completed_by_leave(room_type, ratings, matched, staying)
  local completed = {}
  if room_type ~= "unanimous" then return completed end
  local liked_by = {}
  for user, elements in pairs(ratings) do
    for _, element in ipairs(elements) do
      if element[2] == "like" then
        liked_by[element[1]] = liked_by[element[1]] or {}
        liked_by[element[1]][user] = true
      end
    end
  end
  for media_id, users in pairs(liked_by) do
    if not matched[media_id] and is_group_match(room_type, 0, users, staying) then
      table.insert(completed, media_id)
    end
  end
  table.sort(completed)
  return completed
end
