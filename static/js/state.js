// The app's state, and a tiny publish/subscribe so each part of the UI redraws only what changed.

export const state = {
  status: "connecting", // the socket: connecting | open | closed
  config: null, // the server's `config` message
  identity: null, // what we sign in with: {userName} or {plexToken, plexClientId}
  user: null, // the signed-in User
  screen: "boot", // boot | signin | lobby | create | room
  room: null, // see newRoom()
  target: null, // a room to join once signed in (a share link): {roomName, password}
};

/** A room as this tab sees it. `media` is the deck still to rate as far as this tab holds it (the
 * server sends it a window at a time); media[0] is the top card. */
export function newRoom(name, password) {
  return {
    name,
    password,
    type: "standard",
    loaded: false, // had a join reply (the deck below is real)
    joined: false, // seated in the room on the current connection
    joinCode: "", // the six characters others type instead of the name
    rules: null, // what makes a match and when the room ends (joinRoomSuccess's Rules)
    ended: null, // why rating is over ("matches" | "time"), or null while it goes on
    likesLeft: null, // with a like cap: how many likes this member still has
    pick: null, // the room's pick {mediaId, media, at}, the same for everyone
    results: null, // the last getResults reply: {deckDone, closestCalls}
    media: [],
    after: null, // where the next window of the deck starts (the server's position, kept as it is)
    more: false, // whether the server has cards after those held
    history: [], // [{media, rating}] for undo, oldest first
    matches: new Map(), // mediaId -> Match
    users: new Map(), // userName -> {user, progress}
    seen: new Set(), // every userName seen in this room during this visit
    me: null, // the member this tab is seated as (joinRoomSuccess's userName)
    owner: null, // the owning member's name (roomOwner, then ownerChanged)
    roster: null, // the owner's view: every member, from getMembers (null for everyone else)
    removed: [], // the owner's view: the names the owner removed
  };
}

/** Whether the member has rated every card of the room's deck (none held, none left to ask for). */
export const deckDone = (room) => Boolean(room?.loaded && !room.more && !room.media.length);

const topics = new Map();

export function on(topic, listener) {
  if (!topics.has(topic)) topics.set(topic, new Set());
  topics.get(topic).add(listener);
}

export function emit(topic, detail) {
  for (const listener of [...(topics.get(topic) ?? [])]) listener(detail);
}
