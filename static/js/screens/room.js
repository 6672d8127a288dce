// The room: the card stack with its buttons, the results (matches, the pick, the closest calls),
// the members, and the room's menu; its header says the rules and shows the join code.

import { confirmAction } from "../confirm.js";
import { Deck } from "../deck.js";
import { showDetails } from "../details.js";
import { byId, clear, h, icon } from "../dom.js";
import { showCode, spellCode } from "../format.js";
import { t } from "../i18n.js";
import { initKeys } from "../keys.js";
import { hideMatch, initMatchOverlay, likersText, matchOpen, showMatch, showPick, updateButtons } from "../match-overlay.js";
import { renderResults } from "../matches.js";
import { renderMembers } from "../members.js";
import { buzz } from "../motion.js";
import { initOwnerTools, openMember, readmit } from "../owner.js";
import { endedText, limitParts, ruleParts, ticking } from "../rules.js";
import {
  canRate,
  canUndo,
  deleteRoom,
  isOwner,
  leaveRoom,
  likeCapReached,
  pickForUs,
  rate,
  signOut,
  undo,
} from "../session.js";
import { deckDone, on, state } from "../state.js";
import { initShare, openShare } from "../share.js";
import { seenMatches } from "../storage.js";
import { toast } from "../toast.js";
import { saveTopCard } from "../watchlist.js";

const MATCH_BUZZ = [40, 60, 120]; // ms: vibrate, pause, vibrate

const TABS = ["swipe", "matches", "people"];
const PICK_ERRORS = {
  NoMatches: "ERROR_NO_MATCHES",
  NotRoomOwner: "ERROR_NOT_OWNER",
  StorageUnavailable: "ERROR_STORAGE_UNAVAILABLE",
  disconnected: "ERROR_OFFLINE",
};

let deck;
let matchOrder = "likes";
let clock = 0; // redraws the header while a time limit runs

export function initRoom() {
  deck = new Deck(byId("deck-cards"), {
    canRate: (rating) => {
      if (rating === "like" && likeCapReached()) capReached();
      return canRate(rating);
    },
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
  on("deck", (detail) => {
    drawDeck(detail);
    drawRule();
  });
  on("status", () => drawDeck());
  on("matches", () => {
    drawMatches();
    drawRule();
  });
  on("members", () => {
    drawMembers();
    drawRule();
  });
  on("ended", () => {
    announce(endedText(state.room));
    updateButtons();
    drawMatches();
  });
  on("picked", (pick) => {
    announce(t("PICK_TEXT", { title: pick.media.title }));
    buzz(MATCH_BUZZ);
    if (document.querySelector("dialog[open]:not(#match-dialog)")) toast({ key: "PICK_TOAST", values: { title: pick.media.title } });
    else showPick(pick);
  });
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
  on("rated", ({ media, rating }) => {
    announce(t(rating === "like" ? "RATED_LIKE" : "RATED_DISLIKE", { title: media.title }));
    if (rating === "like" && likeCapReached()) capReached(); // that was the last like
  });
}

const deckVisible = () => byId("panel-swipe").offsetParent !== null;

const capReached = () => toast({ key: "LIKE_CAP_REACHED", values: { count: state.room?.rules?.likeCap ?? 0 } });

function throwCard(rating) {
  if (!matchOpen()) deck.throw(rating);
}

async function choose(again) {
  for (const id of ["pick-button", "pick-again"]) {
    const button = byId(id);
    if (button) button.disabled = true;
  }
  try {
    await pickForUs(again);
  } catch (error) {
    toast({ key: PICK_ERRORS[error.message] ?? "ERROR_UNKNOWN", kind: "error" });
    drawMatches();
  }
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
    drawRule();
    return;
  }
  byId("room-name").textContent = room.name;
  document.title = `${room.name} · MovieMatch`;
  drawCode(room.joinCode);
  drawRule();
  if (!detail?.resumed) showTab("swipe");
}

/** The join code: on the header's share button, and large in the room's panel (to read out). */
function drawCode(code) {
  const button = byId("room-code");
  button.hidden = !code;
  byId("join-code-box").hidden = !code;
  if (!code) return;
  showCode(byId("room-code-text"), byId("room-code-spoken"), code);
  showCode(byId("join-code"), byId("join-code-spoken"), code);
  button.setAttribute("aria-label", t("JOIN_CODE_SHARE", { code: spellCode(code) }));
}

/** The rule and the limits under the room's name; redrawn every second while a time limit runs. */
function drawRule() {
  const room = state.room;
  const rule = clear(byId("room-rule"));
  const limits = clear(byId("room-limits"));
  if (room) {
    ruleParts(room).forEach(({ text, warning }, index) => {
      if (index) rule.append(" · ");
      rule.append(h("span", { class: warning ? "room__warning" : null }, text));
    });
    for (const part of limitParts(room)) {
      limits.append(
        h(
          "span",
          { class: `room__limit${part.warning ? " room__warning" : ""}`, title: part.text },
          icon(part.icon, "icon icon--small"),
          h("span", { "aria-hidden": "true" }, part.value),
          h("span", { class: "visually-hidden" }, part.text),
        ),
      );
    }
  }
  limits.hidden = !limits.childElementCount;
  if (ticking(room) && !clock) clock = setInterval(drawRule, 1000);
  else if (!ticking(room) && clock) {
    clearInterval(clock);
    clock = 0;
  }
}

function drawDeck(detail = {}) {
  const room = state.room;
  const ended = Boolean(room?.ended);
  // Rating is over: no card is left to swipe, or to draw anything over.
  const media = ended ? [] : (room?.media ?? []);
  deck.render(media, detail);
  const empty = Boolean(room?.joined && deckDone(room));
  const loading = Boolean(room && !media.length && !empty && !ended); // joining, or the next window on its way
  byId("deck-loading").hidden = !loading;
  byId("deck-empty").hidden = !(empty || ended);
  // Once rating is over, the results are the way on.
  byId("deck-see-matches").classList.toggle("button--primary", ended);
  byId("deck-see-matches").classList.toggle("button--secondary", !ended);
  byId("deck-empty-text").textContent = ended ? endedText(room) : t("RATE_SECTION_EXHAUSTED_CARDS");
  const ratable = media.length > 0;
  byId("action-like").disabled = !(ratable && canRate("like"));
  byId("action-dislike").disabled = !(ratable && canRate("dislike"));
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
  const pick = room && room.type !== "solo" ? { owner: isOwner(), choose } : null;
  renderResults(room, { order: matchOrder, onOpen: (media) => showDetails(media), seen, pick });
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
