// Play the winner (docs/protocol.md, "Play the winner"): the room's owner picks one of the media
// server's players for a match and starts the film there; what goes wrong is said in the dialog.

import { byId, clear, h, icon } from "./dom.js";
import { t } from "./i18n.js";
import { isOwner, socket } from "./session.js";
import { emit, state } from "./state.js";

const dialog = byId("players-dialog");
let current = null; // the film the dialog is for

const ERRORS = {
  PlayerGone: "PLAYER_GONE",
  PlaybackRefused: "PLAYBACK_REFUSED",
  NotOnServer: "NOT_ON_SERVER",
  NotRoomOwner: "PLAYERS_NOT_OWNER",
  NotAMatch: "PLAYERS_NOT_A_MATCH",
};

socket.on("playbackStarted", ({ mediaId, player }) => {
  const title = state.room?.matches.get(mediaId)?.media.title ?? "";
  emit("toast", { key: "PLAYING_ON", values: { title, player } });
});

/** The owner's "Play on…" for a match of the library; null for anyone else, or a title it lacks. */
export function playControl(media) {
  if (media.inLibrary === false || !isOwner()) return null;
  return h(
    "button",
    {
      type: "button",
      class: "button button--secondary button--small play-on",
      onclick: () => openPlayers(media),
      "aria-label": t("PLAY_ON_LABEL", { title: media.title }),
    },
    icon("play"),
    " ",
    t("PLAY_ON"),
  );
}

/** The reply to `type` about this film (its success or error payload), or null if the socket dropped. */
async function exchange(type, payload, success, failure) {
  if (!socket.send(type, payload)) return { error: { name: "Offline" } };
  try {
    const reply = await socket.waitFor([success, failure], (body) => body?.mediaId === payload.mediaId);
    return reply.type === success ? { ok: reply.payload } : { error: reply.payload };
  } catch {
    return { error: { name: "Offline" } };
  }
}

function say(key, values, { error = false } = {}) {
  byId("players-status").textContent = error ? "" : t(key, values);
  byId("players-error").textContent = error ? t(key, values) : "";
}

function explain(error) {
  if (error.name === "Offline") say("ERROR_OFFLINE", {}, { error: true });
  else if (ERRORS[error.name]) say(ERRORS[error.name], {}, { error: true });
  else say("PLAYBACK_FAILED", { message: error.message ?? "" }, { error: true });
}

async function listPlayers() {
  const media = current;
  const list = clear(byId("players-list"));
  say("PLAYERS_LOADING");
  const { ok, error } = await exchange("getPlayers", { mediaId: media.id }, "getPlayersSuccess", "getPlayersError");
  if (current !== media) return;
  if (error) {
    explain(error);
    return;
  }
  say(ok.players.length ? "PLAYERS_PICK" : "PLAYERS_NONE");
  for (const player of ok.players) {
    list.append(
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "player", onclick: () => play(media, player) },
          icon("play"),
          h("span", { class: "player__text" }, h("strong", {}, player.name), h("span", {}, player.product)),
        ),
      ),
    );
  }
  list.querySelector("button")?.focus();
}

async function play(media, player) {
  for (const button of byId("players-list").querySelectorAll("button")) button.disabled = true;
  say("PLAYERS_STARTING", { player: player.name });
  const payload = { mediaId: media.id, playerId: player.id };
  const { error } = await exchange("playMedia", payload, "playMediaSuccess", "playMediaError");
  if (current !== media) return;
  for (const button of byId("players-list").querySelectorAll("button")) button.disabled = false;
  if (error) explain(error);
  else dialog.close();
}

export function openPlayers(media) {
  current = media;
  byId("players-title").textContent = t("PLAYERS_TITLE", { title: media.title });
  for (const open of document.querySelectorAll("dialog[open]")) open.close();
  dialog.showModal();
  listPlayers();
}

export function initPlayers() {
  byId("players-again").addEventListener("click", () => current && listPlayers());
  dialog.addEventListener("close", () => {
    current = null;
  });
}
