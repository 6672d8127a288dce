// Save for later: the person's watchlist (docs/protocol.md, "Watchlists"), kept by the server per
// person across rooms; the deck's bookmark button and the B key, the toggle in a film's details,
// and the list in the lobby.

import { showDetails } from "./details.js";
import { byId, clear, h, icon } from "./dom.js";
import { facts } from "./format.js";
import { t } from "./i18n.js";
import { poster } from "./poster.js";
import { canRate, socket } from "./session.js";
import { emit, on, state } from "./state.js";

const saved = new Map(); // mediaId -> WatchlistItem {media, savedAt}
const toggles = new Set(); // the save buttons on screen (details), kept pressed as the list changes

const toast = (key, values, kind = "info") => emit("toast", { key, values, kind });

const ACCOUNT_NAMES = { plex: "Plex", jellyfin: "Jellyfin" };
const SAVED_ON_ACCOUNT = { plex: "WATCHLIST_SAVED_PLEX", jellyfin: "WATCHLIST_SAVED_JELLYFIN" };
const ERRORS = {
  NoIdentity: "WATCHLIST_NO_IDENTITY",
  WatchlistFull: "WATCHLIST_FULL",
  StorageUnavailable: "WATCHLIST_UNAVAILABLE",
  NotInRoom: "WATCHLIST_UNAVAILABLE",
};

export const isSaved = (media) => Boolean(media && saved.has(media.id));

/** Save the film for later, or take it off the list; false when that cannot be sent now. */
export function toggleSaved(media) {
  if (!media || !state.user) return false;
  return socket.send(saved.has(media.id) ? "removeFromWatchlist" : "addToWatchlist", { mediaId: media.id });
}

/** A "Save for later" toggle for a film's details. */
export function saveToggle(media) {
  const button = h(
    "button",
    { type: "button", class: "button button--ghost save-toggle", onclick: () => toggleSaved(media) },
    icon("bookmark"),
    " ",
    h("span", {}, t("SAVE_FOR_LATER")),
  );
  button.dataset.id = media.id;
  button.setAttribute("aria-pressed", String(isSaved(media)));
  toggles.add(button);
  return button;
}

function changed() {
  for (const button of [...toggles]) {
    if (!button.isConnected) toggles.delete(button);
    else button.setAttribute("aria-pressed", String(saved.has(button.dataset.id)));
  }
  drawDeckButton();
  drawList();
}

socket.on("loginSuccess", () => socket.send("getWatchlist"));
socket.on("logoutSuccess", () => {
  saved.clear();
  changed();
});
socket.on("getWatchlistSuccess", ({ items }) => {
  saved.clear();
  for (const item of items) saved.set(item.media.id, item);
  changed();
});
socket.on("addToWatchlistSuccess", ({ item, account }) => {
  saved.set(item.media.id, item);
  changed();
  const title = item.media.title;
  if (!account) toast("WATCHLIST_SAVED", { title });
  else if (account.updated) toast(SAVED_ON_ACCOUNT[account.service] ?? "WATCHLIST_SAVED", { title });
  else {
    const key = account.problem === "unsupported" ? "WATCHLIST_NOT_ON_ACCOUNT" : "WATCHLIST_ACCOUNT_FAILED";
    toast(key, { title, service: ACCOUNT_NAMES[account.service] ?? account.service });
  }
});
socket.on("removeFromWatchlistSuccess", ({ mediaId }) => {
  const item = saved.get(mediaId);
  saved.delete(mediaId);
  changed();
  if (item) toast("WATCHLIST_REMOVED", { title: item.media.title });
});
socket.on("watchlistError", (error) => {
  // Reading the list at sign-in fails quietly (a login without an identity has none); changes say why.
  if (error.mediaId) toast(ERRORS[error.name] ?? "ERROR_UNKNOWN", {}, "error");
});

// -- the deck's button ---------------------------------------------------------------------------

function drawDeckButton() {
  const button = byId("action-save");
  const top = state.room?.media[0];
  button.disabled = !(top && canRate());
  button.setAttribute("aria-pressed", String(isSaved(top)));
}

export function saveTopCard() {
  const top = state.room?.media[0];
  if (top && canRate()) toggleSaved(top);
}

// -- the lobby's list ------------------------------------------------------------------------------

function drawList() {
  const items = [...saved.values()].sort((a, b) => b.savedAt - a.savedAt);
  byId("saved").hidden = items.length === 0;
  byId("saved-count").textContent = items.length ? String(items.length) : "";
  const list = clear(byId("saved-list"));
  for (const { media } of items) {
    list.append(
      h(
        "li",
        { class: "saved-item" },
        h(
          "button",
          {
            type: "button",
            class: "saved-item__open",
            onclick: () => showDetails(media),
            "aria-label": t("SHOW_DETAILS_OF", { title: media.title }),
          },
          poster(media, { className: "saved-item__poster", widths: [160, 320], sizes: "48px" }),
          h("span", { class: "saved-item__text" }, h("strong", {}, media.title), h("span", {}, facts(media).join(" · "))),
        ),
        h(
          "button",
          {
            type: "button",
            class: "icon-button",
            onclick: () => toggleSaved(media),
            "aria-label": t("WATCHLIST_REMOVE", { title: media.title }),
            title: t("WATCHLIST_REMOVE", { title: media.title }),
          },
          icon("trash"),
        ),
      ),
    );
  }
}

export function initWatchlist() {
  byId("action-save").addEventListener("click", saveTopCard);
  on("deck", drawDeckButton);
  on("status", drawDeckButton);
  on("user", () => {
    if (!state.user) {
      saved.clear();
      changed();
    }
  });
}
