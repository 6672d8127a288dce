// The big moments, with the film's poster (animated unless motion is reduced): "It's a match!", and
// the pick made for everyone ("Tonight's pick"). Once rating is over nobody is told to keep swiping:
// the way on is the results.

import { byId, clear } from "./dom.js";
import { linkLabel } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { playControl } from "./players.js";
import { poster } from "./poster.js";
import { requestControl } from "./requests.js";
import { endedText } from "./rules.js";
import { state } from "./state.js";

const dialog = byId("match-dialog");
let shown = null; // {mediaId, kind: "match" | "pick"}

export function likersText(match) {
  return t("MATCHES_SECTION_CARD_LIKERS", { users: formatList(match.users), movie: match.media.title });
}

export function showMatch(match) {
  show("match", match.media, likersText(match));
}

export function showPick(pick) {
  show("pick", pick.media, t("PICK_TEXT", { title: pick.media.title }));
}

function show(kind, media, text) {
  shown = { mediaId: media.id, kind };
  byId("match-title").textContent = t(kind === "pick" ? "PICK_TITLE" : "MATCH_TITLE");
  clear(byId("match-poster")).append(
    poster(media, { className: "match__poster", widths: [400, 800], sizes: "(min-width: 700px) 280px, 60vw", eager: true }),
  );
  byId("match-text").textContent = text;
  // The pick is one of the matches: it can be requested or played as they can.
  clear(byId("match-extras")).append(...[requestControl(media), playControl(media)].filter(Boolean));
  const link = byId("match-link");
  link.hidden = !media.linkUrl;
  if (media.linkUrl) {
    link.href = resolve(media.linkUrl);
    link.textContent = linkLabel(media);
  }
  // The pick's way on is its film: its link comes first.
  const buttons = [byId("match-close"), byId("match-see"), link];
  link.parentElement.replaceChildren(...(kind === "pick" ? buttons.reverse() : buttons));
  updateButtons();
  if (!dialog.open) dialog.showModal();
  dialog.classList.remove("match--pop");
  dialog.getBoundingClientRect();
  dialog.classList.add("match--pop");
  firstButton().focus();
}

/** The buttons for what can come next: keep swiping while rating goes on, else the results (or,
 * for the pick, its film). The main one is the primary button. */
export function updateButtons() {
  if (!shown) return;
  const over = Boolean(state.room?.ended);
  const pick = shown.kind === "pick";
  const close = byId("match-close");
  const see = byId("match-see");
  const focused = dialog.contains(document.activeElement) ? document.activeElement : null;
  close.textContent = t(pick ? "CLOSE" : "MATCH_KEEP_SWIPING");
  close.hidden = over && !pick;
  see.textContent = t(over || pick ? "SEE_RESULTS" : "SEE_MATCHES");
  const ended = byId("match-ended");
  ended.hidden = !over || pick;
  ended.textContent = over ? endedText(state.room) : "";
  style(close, pick ? "ghost" : "primary");
  style(see, over && !pick ? "primary" : "secondary");
  style(byId("match-link"), pick ? "primary" : "ghost");
  if (focused?.hidden) firstButton().focus();
}

function style(button, kind) {
  for (const name of ["primary", "secondary", "ghost"]) button.classList.toggle(`button--${name}`, name === kind);
}

const firstButton = () => dialog.querySelector(".match__actions > :not([hidden])");

/** Close the overlay if it shows a match that no longer holds. */
export function hideMatch(mediaId) {
  if (dialog.open && shown?.kind === "match" && shown.mediaId === mediaId) dialog.close();
}

export const matchOpen = () => dialog.open;

export function initMatchOverlay({ seeAll }) {
  byId("match-close").addEventListener("click", () => dialog.close());
  byId("match-see").addEventListener("click", () => {
    dialog.close();
    seeAll();
  });
  dialog.addEventListener("close", () => {
    shown = null;
  });
}
