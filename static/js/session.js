// The conversation with the server: sign-in, rooms, ratings, matches, and resuming all of it
// after a reload, a network change or a server restart without the user doing anything.

import { setTranslations } from "./i18n.js";
import { roomFromUrl, showRoomInUrl } from "./links.js";
import { Socket, socketUrl } from "./socket.js";
import { deckDone, emit, newRoom, state } from "./state.js";
import * as saved from "./storage.js";

export const socket = new Socket(socketUrl());

const PLEX_RETRY_MS = 15_000;
// The cards of the room's deck asked for at a time (every login says so): about 15-30 KB a window,
// so a join costs little even in a room of 100,000 films, yet one window lasts a while of swiping.
export const DECK_WINDOW = 40;
// The next window is asked for when this few cards are left: they are swiped while it comes.
const LOW_WATER = 10;
const RESYNC_MS = 2000; // after RateLimited, the allowance has filled up again by then

let loggingIn = null; // the identity of the login in flight
let renewing = false; // a refused identity token was just forgotten: a new one is being asked for
let joining = null; // {roomName, password, auto, seatCode} of the joinRoom in flight
let creating = null; // the createRoom request in flight
let leaving = 0; // leaveRoom requests of this tab still to be answered

/** A request kept to one in flight: asked for again meanwhile, it is sent once more when answered. */
function single(type) {
  let asked = false;
  let stale = false;
  return {
    ask() {
      if (asked) stale = true;
      else asked = socket.send(type);
    },
    /** The answer came: whether to ask again. */
    answered() {
      const again = stale;
      asked = stale = false;
      return again;
    },
  };
}

const roster = single("getMembers"); // the owner's view of every member
const results = single("getResults"); // the closest calls, once this member's deck is done
let fetching = null; // the getCards request in flight
let resync = null; // the timer of the join again after a RateLimited

const sameRoom = (a, b) => saved.roomKey(a) === saved.roomKey(b);

export function setScreen(screen) {
  if (state.screen === screen) return;
  state.screen = screen;
  emit("screen", screen);
}

const toast = (key, values, kind = "info") => emit("toast", { key, values, kind });

export function start() {
  const roomName = roomFromUrl();
  if (roomName) {
    const current = saved.currentRoom.get();
    const password = current && sameRoom(current.roomName, roomName) ? current.password : undefined;
    state.target = { roomName, password };
  }
  state.identity = saved.identity.get();
  socket.onStatus(onStatus);
  for (const [type, handler] of Object.entries(handlers)) socket.on(type, handler);
  socket.connect();
}

function onStatus(status) {
  state.status = status;
  if (status !== "open") {
    loggingIn = joining = creating = fetching = null;
    leaving = 0;
    // What was asked on the connection is lost with it.
    roster.answered();
    results.answered();
    if (state.room) state.room.joined = false;
  }
  emit("status", status);
}

// -- actions ---------------------------------------------------------------------------------

export function signIn(identity) {
  loggingIn = identity;
  return socket.send("login", loginRequest(identity));
}

/** A sign-in by name presents this browser's identity token for the name, or asks for one. Plex
 * accounts are identities already. Every login asks for the deck in windows. */
function loginRequest(identity) {
  if (!identity.userName) return { ...identity, window: DECK_WINDOW };
  const token = saved.identityTokens.get(identity.userName);
  const proof = token ? { identityToken: token } : { newIdentity: true };
  return { userName: identity.userName, ...proof, window: DECK_WINDOW };
}

/** Sign in under another name and join the room (its seat under this name was someone else's). */
export function joinAs(userName, roomName, password) {
  state.target = { roomName, password };
  return signIn({ userName });
}

export function signOut() {
  socket.send("logout");
  saved.identity.clear();
  state.identity = state.user = null;
  exitRoom();
  setScreen("signin");
  emit("user");
}

/** Join (or join again: the seat's token resumes it). Ratings wait for the reply: its deck is the
 * server's as it was when it read the join, and would put a card rated meanwhile back on top. */
export function joinRoom(roomName, password, { auto = false, seatCode, countMyWatched = false } = {}) {
  const token = state.user ? saved.memberTokens.get(state.user.userName, roomName) : undefined;
  const payload = { roomName };
  if (password) payload.password = password;
  if (token) payload.memberToken = token;
  if (seatCode) payload.seatCode = seatCode;
  if (countMyWatched) payload.countMyWatched = true;
  joining = { roomName, password, auto, seatCode };
  emit("deck"); // the rating buttons say it
  return socket.send("joinRoom", payload);
}

export function createRoom(request) {
  creating = request;
  return socket.send("createRoom", request);
}

export function leaveRoom() {
  if (socket.send("leaveRoom")) leaving += 1;
  exitRoom();
  setScreen("lobby");
}

export function deleteRoom() {
  if (state.room) socket.send("deleteRoom", { roomName: state.room.name });
}

/** Whether this tab's member owns the room (the owner's tools are shown). */
export const isOwner = () => Boolean(state.room && isOwnerOf(state.room));
const isOwnerOf = (room) => Boolean(room.owner && room.owner === room.me);

/** The owner's action on a member: resolves with manageMemberSuccess, rejects with the error's name. */
export function manageMember(userName, action) {
  const accept = (reply) => reply?.userName === userName && reply?.action === action;
  return ask("manageMember", { userName, action }, "manageMemberSuccess", "manageMemberError", accept);
}

/** Ask for the full member list (the owner's view), at most one request at a time. */
export function refreshRoster() {
  if (isOwner() && state.room.joined) roster.ask();
}

/** Ask for the closest calls (getResults), which the server gives once this member's deck is done
 * or the room has ended; the matches themselves are here already. Solo rooms have none. */
function refreshResults() {
  const room = state.room;
  if (room?.joined && room.type !== "solo" && (room.ended || deckDone(room))) results.ask();
}

/** Whether this member has used every like the room's like cap allows. */
export const likeCapReached = () => state.room?.likesLeft === 0;

/** Whether a rating (any, without `rating`) can be sent now: seated, online, the room not over,
 * and for a like, a like left. */
export const canRate = (rating) =>
  Boolean(state.room?.joined && !state.room.ended && state.status === "open" && !joining) &&
  !(rating === "like" && likeCapReached());

/** Rate the top card; false when that is not possible right now (offline, room ended, no like left). */
export function rate(rating) {
  const room = state.room;
  const item = room?.media[0];
  if (!item || !canRate(rating)) return false;
  if (!socket.send("rate", { mediaId: item.id, rating })) return false;
  room.media.shift();
  room.history.push({ media: item, rating });
  saved.ratingHistory.set(room.name, room.history);
  countLike(room, rating, -1);
  emit("rated", { media: item, rating });
  emit("deck");
  topUp();
  return true;
}

/** Ask for the next window of the deck when the stack runs low (one request at a time). */
function topUp() {
  const room = state.room;
  if (!room?.joined || !room.more || fetching || joining || creating || room.media.length > LOW_WATER) return;
  const request = { after: room.after };
  if (socket.send("getCards", request)) fetching = request;
}

function countLike(room, rating, change) {
  if (rating === "like" && room.likesLeft !== null) room.likesLeft = Math.max(0, room.likesLeft + change);
}

/** A rating the server refused: its card goes back on top, as an undo would put it. */
function takeBack(mediaId) {
  const room = state.room;
  const index = room.history.findIndex((entry) => entry.media.id === mediaId);
  if (index < 0) return null;
  const [entry] = room.history.splice(index, 1);
  room.media.unshift(entry.media);
  saved.ratingHistory.set(room.name, room.history);
  countLike(room, entry.rating, 1);
  return entry;
}

/** The room's pick, for everyone ("pick one for us"); `again`: another one (the owner's). Resolves
 * with pickForUsSuccess, rejects with the error's name. */
export async function pickForUs(again = false) {
  const reply = await ask("pickForUs", again ? { again: true } : undefined, "pickForUsSuccess", "pickForUsError");
  // A pick made before ours stands, and is not announced again: its film is among the matches.
  const match = state.room?.matches.get(reply.mediaId);
  if (match) setPick({ mediaId: reply.mediaId, media: match.media, at: reply.at });
  return reply;
}

function setPick(pick) {
  const room = state.room;
  if (!room || (room.pick?.mediaId === pick.mediaId && room.pick.at === pick.at)) return;
  room.pick = pick;
  emit("matches");
  emit("picked", pick);
}

export const canUndo = () => Boolean(canRate() && state.room.history.length);

/** Put the last rated card back on top; returns the entry or null. */
export function undo() {
  const room = state.room;
  if (!canUndo()) return null;
  const entry = room.history.at(-1);
  if (!socket.send("undoRate", { mediaId: entry.media.id })) return null;
  room.history.pop();
  room.media.unshift(entry.media);
  countLike(room, entry.rating, 1);
  saved.ratingHistory.set(room.name, room.history);
  emit("deck", { undone: entry });
  return entry;
}

/** A request with a reply (filters, libraries): resolves with the payload, rejects on error. */
export async function ask(type, payload, success, failure, accept) {
  if (!socket.send(type, payload)) throw new Error("disconnected");
  const reply = await socket.waitFor([success, failure, "error"], (body, replyType) => {
    if (replyType === "error") return body?.requestType === type;
    return accept ? accept(body) : true;
  });
  if (reply.type !== success) throw new Error(reply.payload?.name ?? "error");
  return reply.payload;
}

// -- room bookkeeping --------------------------------------------------------------------------

function enterRoom(payload) {
  const attempt = joining ?? (creating && { roomName: creating.roomName, password: creating.password });
  joining = creating = null;
  const previous = state.room && sameRoom(state.room.name, payload.roomName) ? state.room : null;
  const room = previous ?? newRoom(payload.roomName, attempt?.password);
  if (attempt?.password !== undefined) room.password = attempt.password;
  room.name = payload.roomName;
  room.type = payload.roomType ?? "standard";
  room.joined = true;
  room.media = payload.media ?? [];
  // A server that sends the whole deck sends no window: then nothing is left to ask for.
  room.after = payload.window?.after ?? null;
  room.more = Boolean(payload.window?.more);
  fetching = null; // replies come in order: one asked for before this join was answered before it, or was dropped
  const remaining = new Set(room.media.map((item) => item.id));
  // A fresh page has no history in memory yet: take this tab's saved one.
  const history = previous?.loaded ? room.history : saved.ratingHistory.get(room.name);
  // Only what the server has really recorded can be undone (a rating lost in a dropped connection is back in the deck).
  room.history = history.filter((entry) => !remaining.has(entry.media.id));
  room.matches = new Map((payload.previousMatches ?? []).map((match) => [match.media.id, match]));
  room.users = new Map((payload.users ?? []).map((entry) => [entry.user.userName, entry]));
  for (const name of room.users.keys()) room.seen.add(name);
  room.loaded = true;
  // The member this tab is seated as: its identity's seat may carry another name than the login's.
  room.me = payload.userName ?? state.user.userName;
  room.owner = payload.roomOwner ?? null;
  if (!isOwnerOf(room)) {
    room.roster = null;
    room.removed = [];
  }
  room.joinCode = payload.joinCode ?? "";
  room.rules = payload.rules ?? { roomType: room.type, matchThreshold: 2 };
  room.ended = payload.ended?.reason ?? null;
  room.likesLeft = payload.likesLeft ?? null;
  room.pick = payload.pick ?? null;
  room.results = null;
  state.room = room;
  state.target = null;
  const userName = state.user.userName;
  if (payload.memberToken) saved.memberTokens.set(userName, room.name, payload.memberToken);
  saved.recentRooms.add(room.name);
  saved.currentRoom.set({ roomName: room.name, password: room.password });
  showRoomInUrl(room.name);
  setScreen("room");
  emit("room", { resumed: Boolean(previous?.loaded) });
  emit("deck");
  emit("matches");
  emit("members");
  refreshRoster();
  refreshResults();
  topUp();
}

/** A message was dropped (RateLimited): a rating or a getCards, the page cannot tell which. Once the
 * allowance has filled up again, join the room again on this connection: the server's first window
 * holds every film it has no rating of, so a dropped rating's card is back on top (and out of the
 * undo history), and a dropped getCards is as good as answered. Ratings wait for that join (canRate). */
function resyncSoon() {
  if (resync || !state.room?.joined) return;
  resync = setTimeout(() => {
    resync = null;
    if (state.room?.joined && state.status === "open" && !joining) rejoin();
  }, RESYNC_MS);
}

function exitRoom() {
  state.room = null;
  state.target = null;
  saved.currentRoom.clear();
  showRoomInUrl(null);
  emit("room", {});
  emit("deck");
  emit("matches");
}

function rejoin() {
  const room = state.room;
  if (room) joinRoom(room.name, room.password, { auto: true });
}

// -- what the server says ----------------------------------------------------------------------

const handlers = {
  config(config) {
    state.config = config;
    emit("config", config);
    socket.send("setLocale", { language: navigator.language });
    const identity = state.identity;
    if (identity && !(config.requirePlexLogin && identity.userName)) signIn(identity);
    else setScreen("signin");
  },

  translations(strings) {
    setTranslations(strings);
  },

  loginSuccess({ identityToken, jellyfinSession, ...user }) {
    // A Jellyfin sign-in is kept as its session ticket, never as the password it was made with.
    const identity = jellyfinSession ? { jellyfinSession } : (loggingIn ?? state.identity);
    loggingIn = null;
    renewing = false;
    if (identityToken && identity?.userName) {
      // Another tab of this browser was given one for this name meanwhile: be that same person.
      if (saved.identityTokens.get(identity.userName)) {
        signIn(identity);
        return;
      }
      saved.identityTokens.set(identity.userName, identityToken);
    }
    const renamed = state.user && state.user.userName !== user.userName;
    state.user = user;
    state.identity = identity;
    saved.identity.set(identity);
    emit("user");
    if (renamed && state.room) exitRoom();
    if (state.room) rejoin();
    else if (state.target) {
      state.room = newRoom(state.target.roomName, state.target.password);
      emit("room", {});
      setScreen("room");
      joinRoom(state.target.roomName, state.target.password, { auto: true });
    } else if (state.screen !== "create") setScreen("lobby");
  },

  loginError(error) {
    const failed = loggingIn ?? state.identity;
    loggingIn = null;
    // A token this server refuses (not one it could have issued): forget it and ask for a new one, once.
    if (error.name === "InvalidIdentity" && failed?.userName && !renewing) {
      renewing = true;
      saved.identityTokens.set(failed.userName, null);
      signIn(failed);
      return;
    }
    renewing = false;
    // plex.tv or Jellyfin being unreachable says nothing about the token: keep it and try again in a while.
    const retry =
      (error.name === "PlexUnavailable" && failed?.plexToken) ||
      (error.name === "JellyfinUnavailable" && failed?.jellyfinSession);
    if (!retry) {
      saved.identity.clear();
      state.identity = null;
    }
    state.user = null;
    emit("user");
    setScreen("signin");
    emit("signinError", error);
    if (retry) {
      setTimeout(() => {
        if (state.screen === "signin" && state.identity === failed) signIn(failed);
      }, PLEX_RETRY_MS);
    }
  },

  joinRoomSuccess: enterRoom,
  createRoomSuccess: enterRoom,

  joinRoomError(error) {
    const attempt = joining;
    joining = null;
    if (error.name === "NotLoggedInError" && state.identity) {
      signIn(state.identity);
      return;
    }
    const roomName = attempt?.roomName ?? state.room?.name ?? "";
    if (error.name === "RoomNotFoundError") saved.recentRooms.remove(roomName);
    if (state.room) exitRoom();
    setScreen("lobby");
    emit("joinError", { ...error, roomName, password: attempt?.password, seatCode: attempt?.seatCode });
  },

  createRoomError(error) {
    creating = null;
    emit("createError", error);
  },

  leaveRoomSuccess() {
    if (leaving > 0) {
      leaving -= 1;
      return;
    }
    // Unasked: the same member left the room from another tab or device. This one goes with it.
    if (state.room) {
      exitRoom();
      setScreen("lobby");
    }
  },

  leaveRoomError() {
    leaving = Math.max(0, leaving - 1);
  },

  removedFromRoom({ roomName }) {
    if (!state.room || !sameRoom(state.room.name, roomName)) return;
    exitRoom();
    setScreen("lobby");
    emit("joinError", { name: "RemovedFromRoom", roomName });
  },

  memberRemoved({ userName }) {
    const room = state.room;
    if (!room) return;
    room.users.delete(userName);
    emit("members");
    refreshRoster();
  },

  ownerChanged({ userName }) {
    const room = state.room;
    if (!room) return;
    const was = isOwner();
    room.owner = userName ?? null;
    if (!isOwner()) {
      room.roster = null;
      room.removed = [];
    } else if (!was) {
      toast("YOU_ARE_OWNER");
    }
    emit("members");
    emit("matches"); // what only the owner may do with a match (pick again, request it, play it)
    refreshRoster();
  },

  getMembersSuccess(listing) {
    const room = state.room;
    const again = roster.answered();
    if (room && isOwner() && sameRoom(room.name, listing.roomName)) {
      room.roster = listing.members ?? [];
      room.removed = listing.removed ?? [];
      emit("members");
    }
    if (again) refreshRoster();
  },

  getMembersError() {
    roster.answered();
  },

  getResultsSuccess(payload) {
    const room = state.room;
    const again = results.answered();
    if (room && sameRoom(room.name, payload.roomName)) {
      room.results = { deckDone: Boolean(payload.deckDone), closestCalls: payload.closestCalls ?? [] };
      emit("matches");
    }
    if (again) refreshResults();
  },

  getResultsError() {
    results.answered();
  },

  roomEnded({ roomName, reason }) {
    const room = state.room;
    if (!room || !sameRoom(room.name, roomName) || room.ended) return;
    room.ended = reason ?? "matches";
    emit("deck");
    emit("ended", room.ended);
    refreshResults();
  },

  picked(pick) {
    setPick(pick);
  },

  manageMemberSuccess({ action }) {
    // The others hear of a removal or a new owner, and the list follows; a readmission is the owner's alone.
    if (action === "readmit") refreshRoster();
  },
  manageMemberError() {},
  logoutSuccess() {},
  undoRateSuccess() {},

  userJoinedRoom(entry) {
    const room = state.room;
    if (!room) return;
    const name = entry.user.userName;
    room.users.set(name, entry);
    if (!room.seen.has(name)) {
      room.seen.add(name);
      toast("USER_JOINED", { user: name });
    }
    emit("members");
    refreshRoster();
  },

  userLeftRoom(user) {
    if (!state.room || user.userName === state.room.me) return;
    state.room.users.delete(user.userName);
    emit("members");
    refreshRoster();
  },

  userProgress(entry) {
    const room = state.room;
    if (!room) return;
    const name = entry.user.userName;
    const known = room.users.get(name);
    room.users.set(name, { user: known?.user ?? entry.user, progress: entry.progress });
    const listed = room.roster?.find((member) => member.userName === name);
    if (listed) listed.progress = entry.progress;
    emit("members");
    refreshResults(); // a like of someone else's changes the closest calls
  },

  match(match) {
    const room = state.room;
    if (!room) return;
    const fresh = !room.matches.has(match.media.id);
    room.matches.set(match.media.id, match);
    emit("matches");
    if (fresh) emit("newMatch", match);
    refreshResults();
  },

  matchRemoved({ mediaId }) {
    if (!state.room?.matches.delete(mediaId)) return;
    emit("matches");
    emit("matchRemoved", mediaId);
    refreshResults();
  },

  getCardsSuccess({ media, after, more }) {
    const room = state.room;
    if (!room || !fetching) return;
    const stale = fetching.stale;
    fetching = null;
    // Asked for before the deck was dealt again: its positions are those of the old deck.
    if (stale) return topUp();
    // Never the same card twice in the stack.
    const held = new Set(room.media.map((item) => item.id));
    room.media.push(...media.filter((item) => !held.has(item.id)));
    room.after = after;
    room.more = more;
    emit("deck");
    topUp();
  },

  getCardsError(error) {
    fetching = null;
    if (error.name === "NotInRoom" && state.room && !joining) rejoin();
  },

  /** A standing room's deck or rules changed (its library, or a new definition on another process). */
  roomChanged({ roomName, rules, added = [], removed = [], media, window }) {
    const room = state.room;
    if (!room || !sameRoom(room.name, roomName)) return;
    const gone = new Set(removed);
    room.history = room.history.filter((entry) => !gone.has(entry.media.id));
    saved.ratingHistory.set(room.name, room.history);
    if (window) {
      // The deck was dealt again (films left it, or a new order): this is its first window now,
      // without the films this tab rated while it was on its way.
      const rated = new Set(room.history.map((entry) => entry.media.id));
      room.media = (media ?? []).filter((item) => !rated.has(item.id));
      room.after = window.after;
      room.more = Boolean(window.more);
      if (fetching) fetching = { ...fetching, stale: true };
    } else {
      room.media = room.media.filter((item) => !gone.has(item.id));
      // New films join the end of the room's list: while windows are left, the last of them bring them.
      if (!room.more) room.media.push(...added);
    }
    // A film that left takes its match, and the pick when it was the pick, with it.
    for (const mediaId of gone) handlers.matchRemoved({ mediaId });
    if (room.pick && gone.has(room.pick.mediaId)) room.pick = null;
    // The closest calls wait for the end of the deck again.
    if (added.length || window) room.results = null;
    const capChanged = rules && (rules.likeCap ?? null) !== (room.rules?.likeCap ?? null);
    if (rules) {
      room.rules = rules;
      room.type = rules.roomType ?? room.type;
    }
    emit("deck");
    emit("matches");
    topUp();
    refreshResults();
    // How many likes this member has left under another cap is the server's to say.
    if (capChanged) rejoin();
  },

  rateError(error) {
    const room = state.room;
    if (!room) return;
    if (error.name === "NotInRoom") rejoin();
    else if (error.name === "RoomEnded" || error.name === "LikeCapReached") {
      // Not recorded: the card is still to rate (after the end, nobody rates it).
      const entry = takeBack(error.mediaId);
      if (error.name === "LikeCapReached") {
        room.likesLeft = 0;
        toast("LIKE_CAP_REACHED", { count: room.rules?.likeCap ?? 0 });
        emit("deck", entry ? { undone: entry } : {});
      } else if (room.ended) {
        emit("deck");
      } else {
        // Ended before its announcement reached this tab (a time limit passes between two checks).
        handlers.roomEnded({ roomName: room.name, reason: room.rules?.endsAt <= Date.now() ? "time" : "matches" });
      }
    }
    // AlreadyRated, UnknownMedia, NotRated: the server already has what we wanted.
  },

  roomDeleted({ roomName }) {
    if (!state.room || !sameRoom(state.room.name, roomName)) return;
    saved.recentRooms.remove(roomName);
    exitRoom();
    setScreen("lobby");
    toast("ROOM_DELETED", { room: roomName });
  },

  deleteRoomSuccess() {},

  deleteRoomError(error) {
    toast(error.name === "NotRoomOwner" ? "DELETE_ROOM_NOT_OWNER" : "ERROR_UNKNOWN", {}, "error");
  },

  error(error) {
    if (error.name === "RateLimited") resyncSoon();
    if (error.requestType === "joinRoom") handlers.joinRoomError(error);
    else if (error.requestType === "createRoom") handlers.createRoomError(error);
    else if (!["requestFilters", "requestFilterValues", "getLibraries", "manageMember", "pickForUs"].includes(error.requestType)) {
      toast("ERROR_UNKNOWN", {}, "error");
    }
  },
};
