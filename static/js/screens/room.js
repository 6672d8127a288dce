// The room: the card stack with its buttons, the matches, the members, and the room's menu.

import { confirmAction } from "../confirm.js";
import { Deck } from "../deck.js";
import { showDetails } from "../details.js";
import { byId } from "../dom.js";
import { t } from "../i18n.js";
import { initKeys } from "../keys.js";
import { hideMatch, initMatchOverlay, likersText, matchOpen, showMatch } from "../match-overlay.js";
import { renderMatches } from "../matches.js";
import { renderMembers } from "../members.js";
import { buzz } from "../motion.js";
import { initOwnerTools, openMember, readmit } from "../owner.js";
import { canRate, canUndo, deleteRoom, isOwner, leaveRoom, rate, signOut, undo } from "../session.js";
import { deckDone, on, state } from "../state.js";
import { initShare, openShare } from "../share.js";
import { seenMatches } from "../storage.js";
import { toast } from "../toast.js";
import { saveTopCard } from "../watchlist.js";

const MATCH_BUZZ = [40, 60, 120]; // ms: vibrate, pause, vibrate

const ROOM_TYPES = { standard: "ROOM_TYPE_STANDARD", unanimous: "ROOM_TYPE_UNANIMOUS", solo: "ROOM_TYPE_SOLO" };
const TABS = ["swipe", "matches", "people"];

let deck;
let matchOrder = "recent";

export function initRoom() {
  deck = new Deck(byId("deck-cards"), {
    canRate,
    rate,
    details: (media) => openDetails(media),
  });
  byId("action-like").addEventListener("click", () => throwCard("like"));
  byId("action-dislike").addEventListener("click", () => throwCard("dislike"));
  byId("action-undo").addEventListener("click", undoLast);
  byId("action-info").addEventListener("click", () => {
    const top = state.room?.media[0];
    if (top) openDetails(top);
  });
  byId("deck-see-matches").addEventListener("click", () => showTab("matches"));
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
  }
  byId("matches-sort").addEventListener("change", (event) => {
    matchOrder = event.target.value;
    drawMatches();
  });
  for (const button of document.querySelectorAll("[data-action=share]")) {
    button.addEventListener("click", () => state.room && openShare(state.room));
  }
  byId("room-leave").addEventListener("click", async () => {
    if (await confirmAction({ message: "LEAVE_ROOM_CONFIRM", confirm: "LEAVE_ROOM" })) leaveRoom();
  });
  byId("room-delete").addEventListener("click", async () => {
    if (await confirmAction({ message: "DELETE_ROOM_CONFIRM", confirm: "DELETE_ROOM", danger: true })) deleteRoom();
  });
  byId("room-signout").addEventListener("click", signOut);
  initShare();
  initOwnerTools();
  initMatchOverlay({ seeAll: () => showTab("matches") });
  initKeys({
    active: () => state.screen === "room" && deckVisible() && !document.querySelector("dialog[open]"),
    like: () => throwCard("like"),
    dislike: () => throwCard("dislike"),
    undo: undoLast,
    save: saveTopCard,
  });

  on("room", drawRoom);
  on("shown", (screen) => {
    if (screen !== "room") return;
    drawRoom({ resumed: true });
    drawDeck();
    drawMatches();
    drawMembers();
  });
  on("deck", (detail) => drawDeck(detail));
  on("status", () => drawDeck());
  on("matches", drawMatches);
  on("members", drawMembers);
  on("newMatch", (match) => {
    announce(likersText(match));
    buzz(MATCH_BUZZ);
    const busy = document.querySelector("dialog[open]:not(#match-dialog)");
    // Solo rooms match on every like: a toast is enough there. Never pop over another dialog.
    if (state.room?.type === "solo") toast({ key: "SOLO_MATCH_TOAST", values: { title: match.media.title } });
    else if (busy) toast({ key: "MATCH_TOAST", values: { title: match.media.title } });
    else showMatch(match);
  });
  // Keep "matched 5 minutes ago" and "last seen 5 minutes ago" current.
  setInterval(() => {
    if (!state.room) return;
    drawMatches();
    drawMembers();
  }, 60_000);
  document.addEventListener("visibilitychange", () => state.room && drawMatches()); // seen on return
  on("matchRemoved", hideMatch);
  on("rated", ({ media, rating }) =>
    announce(t(rating === "like" ? "RATED_LIKE" : "RATED_DISLIKE", { title: media.title })),
  );
}

const deckVisible = () => byId("panel-swipe").offsetParent !== null;

function throwCard(rating) {
  if (!matchOpen()) deck.throw(rating);
}

function undoLast() {
  const entry = undo();
  if (entry) announce(t("UNDONE", { title: entry.media.title }));
}

function openDetails(media) {
  const onTop = state.room?.media[0]?.id === media.id;
  showDetails(media, onTop ? { onRate: (rating) => throwCard(rating) } : {});
}

function showTab(name) {
  const screen = byId("screen-room");
  screen.dataset.tab = TABS.includes(name) ? name : "swipe";
  for (const tab of document.querySelectorAll(".tab")) {
    const current = tab.dataset.tab === screen.dataset.tab;
    if (current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (name === "matches") {
    drawMatches();
    byId("matches-title").focus({ preventScroll: true });
  }
}

function drawRoom(detail) {
  const room = state.room;
  if (!room) {
    showTab("swipe");
    return;
  }
  byId("room-name").textContent = room.name;
  byId("room-type").textContent = t(ROOM_TYPES[room.type] ?? "ROOM_TYPE_STANDARD");
  document.title = `${room.name} · MovieMatch`;
  if (!detail?.resumed) showTab("swipe");
}

function drawDeck(detail = {}) {
  const room = state.room;
  const media = room?.media ?? [];
  deck.render(media, detail);
  const ended = Boolean(room?.ended);
  const empty = Boolean(room?.joined && deckDone(room));
  const loading = Boolean(room && !media.length && !empty && !ended); // joining, or the next window on its way
  byId("deck-loading").hidden = !loading;
  byId("deck-empty").hidden = !(empty || ended);
  byId("deck-empty-text").textContent = t(ended ? "ROOM_ENDED" : "RATE_SECTION_EXHAUSTED_CARDS");
  const ratable = canRate() && media.length > 0;
  byId("action-like").disabled = !ratable;
  byId("action-dislike").disabled = !ratable;
  byId("action-info").disabled = !media.length;
  byId("action-undo").disabled = !canUndo();
}

function drawMatches() {
  const room = state.room;
  const matches = room ? [...room.matches.values()] : [];
  // Shown in a list someone can see (its tab, or the column of a wide screen): seen.
  if (room && byId("panel-matches").offsetParent !== null && document.visibilityState === "visible") {
    seenMatches.add(room.name, matches.map((match) => match.media.id));
  }
  const seen = room ? seenMatches.get(room.name) : new Set();
  renderMatches(matches, { order: matchOrder, onOpen: (media) => showDetails(media), seen });
}

function drawMembers() {
  const room = state.room;
  const owner = isOwner();
  // Only the owner may delete the room: nobody else is offered it.
  byId("room-delete").hidden = !owner;
  if (room) renderMembers(room, owner ? { manage: openMember, readmit } : {});
}

function announce(text) {
  const region = byId("deck-status");
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}
