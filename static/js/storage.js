// Everything this device remembers. Storage can be unavailable (private mode, quota): never throw.

export function load(area, key) {
  try {
    const text = area.getItem(key);
    return text == null ? null : JSON.parse(text);
  } catch {
    return null;
  }
}

export function save(area, key, value) {
  try {
    if (value == null) area.removeItem(key);
    else area.setItem(key, JSON.stringify(value));
  } catch {
    // Not remembered; the app still works for this visit.
  }
}

const IDENTITY = "moviematch.identity";
const IDENTITY_TOKENS = "moviematch.identityTokens";
const PLEX_CLIENT_ID = "moviematch.plexClientId";
const MEMBER_TOKENS = "moviematch.memberTokens";
const RECENT_ROOMS = "moviematch.recentRooms";
const CURRENT_ROOM = "moviematch.currentRoom";
const HISTORY = "moviematch.history";
const SEEN_MATCHES = "moviematch.seenMatches";
const RECENT_LIMIT = 5;
const TOKEN_LIMIT = 30;
const IDENTITY_LIMIT = 20;
const SEEN_ROOMS_LIMIT = 20;
const SEEN_PER_ROOM_LIMIT = 500;

/** Who signs in automatically: {userName}, {plexToken, plexClientId} or {jellyfinSession}. */
export const identity = {
  get: () => load(localStorage, IDENTITY),
  set: (value) => save(localStorage, IDENTITY, value),
  clear: () => save(localStorage, IDENTITY, null),
};

/** The X-Plex-Client-Identifier of this browser: random, kept across sign-outs. */
export function plexClientId() {
  let id = load(localStorage, PLEX_CLIENT_ID);
  if (typeof id !== "string" || !id) {
    const bytes = crypto.getRandomValues(new Uint8Array(15));
    id = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
    save(localStorage, PLEX_CLIENT_ID, id);
  }
  return id;
}

/** Names of rooms and people, compared roughly as the server does (normalised, case folded, spaces collapsed). */
export const nameKey = (name) => name.normalize().toLowerCase().replace(/\s+/gu, " ").trim();
export const roomKey = nameKey;
const memberKey = (userName, roomName) => `${userName}\n${roomKey(roomName)}`;

/** A map kept in localStorage, holding the `limit` entries set last. */
function recentMap(storageKey, limit) {
  return {
    get: (key) => (load(localStorage, storageKey) ?? {})[key],
    set(key, value) {
      const entries = load(localStorage, storageKey) ?? {};
      delete entries[key];
      if (value) entries[key] = value;
      const kept = Object.entries(entries).slice(-limit); // oldest first: insertion order
      save(localStorage, storageKey, Object.fromEntries(kept));
    },
  };
}

const identityMap = recentMap(IDENTITY_TOKENS, IDENTITY_LIMIT);

/**
 * The identity token the server issued to this browser, one per name signed in with: whoever signs
 * in here under another name is another person (a shared tablet), and is not seated in the first
 * one's seats. Kept across sign-outs: signing in again under the name is being that person again.
 */
export const identityTokens = {
  get: (userName) => identityMap.get(nameKey(userName)),
  set: (userName, token) => identityMap.set(nameKey(userName), token),
};

const memberMap = recentMap(MEMBER_TOKENS, TOKEN_LIMIT);

/** The memberToken of the last join: lets a reload or reconnect take the seat back at once. */
export const memberTokens = {
  get: (userName, roomName) => memberMap.get(memberKey(userName, roomName)),
  set: (userName, roomName, token) => memberMap.set(memberKey(userName, roomName), token),
};

/** Rooms joined on this device, newest first, so nobody has to remember a room name. */
export const recentRooms = {
  get: () => load(localStorage, RECENT_ROOMS) ?? [],
  add(roomName) {
    const others = recentRooms.get().filter((name) => roomKey(name) !== roomKey(roomName));
    save(localStorage, RECENT_ROOMS, [roomName, ...others].slice(0, RECENT_LIMIT));
  },
  remove(roomName) {
    save(localStorage, RECENT_ROOMS, recentRooms.get().filter((name) => roomKey(name) !== roomKey(roomName)));
  },
};

/** The room this tab is in ({roomName, password}): session only, so the password is not kept for good. */
export const currentRoom = {
  get: () => load(sessionStorage, CURRENT_ROOM),
  set: (value) => save(sessionStorage, CURRENT_ROOM, value),
  clear: () => save(sessionStorage, CURRENT_ROOM, null),
};

/** The matches of a room this device has shown in its list: the badge counts the others. */
export const seenMatches = {
  get: (roomName) => new Set((load(localStorage, SEEN_MATCHES) ?? {})[roomKey(roomName)] ?? []),
  add(roomName, mediaIds) {
    const rooms = load(localStorage, SEEN_MATCHES) ?? {};
    const key = roomKey(roomName);
    const seen = new Set([...(rooms[key] ?? []), ...mediaIds]);
    delete rooms[key];
    rooms[key] = [...seen].slice(-SEEN_PER_ROOM_LIMIT);
    save(localStorage, SEEN_MATCHES, Object.fromEntries(Object.entries(rooms).slice(-SEEN_ROOMS_LIMIT)));
  },
};

/** The last ratings of this tab in a room (for undo after a reload). */
export const ratingHistory = {
  get: (roomName) => (load(sessionStorage, HISTORY) ?? {})[roomKey(roomName)] ?? [],
  set(roomName, entries) {
    save(sessionStorage, HISTORY, { [roomKey(roomName)]: entries.slice(-20) });
  },
};
