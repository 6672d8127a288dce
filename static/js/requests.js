// Requests for matched titles the library lacks (docs/protocol.md, "Requests"): their state, as
// every member of the room is told it, and the owner's one-tap request.

import { h, icon } from "./dom.js";
import { t } from "./i18n.js";
import { isOwner, socket } from "./session.js";
import { emit, state } from "./state.js";

const statuses = new Map(); // mediaId -> RequestStatus.status, for this room
const asking = new Set(); // mediaIds whose request is on its way
const REQUESTABLE = new Set(["none", "declined", "failed"]);
const STATUS_KEYS = {
  none: "REQUEST_STATUS_NONE",
  pending: "REQUEST_STATUS_PENDING",
  approved: "REQUEST_STATUS_APPROVED",
  processing: "REQUEST_STATUS_PROCESSING",
  declined: "REQUEST_STATUS_DECLINED",
  failed: "REQUEST_STATUS_FAILED",
  available: "REQUEST_STATUS_AVAILABLE",
};
const ERRORS = { NotRoomOwner: "REQUEST_NOT_OWNER", NotAMatch: "REQUEST_NOT_A_MATCH" };

const toast = (key, values, kind = "info") => emit("toast", { key, values, kind });
const titleOf = (mediaId) => state.room?.matches.get(mediaId)?.media.title ?? "";

function entered(payload) {
  statuses.clear();
  asking.clear();
  if ((payload.previousMatches ?? []).some((match) => match.media.inLibrary === false)) socket.send("getRequests");
}

socket.on("joinRoomSuccess", entered);
socket.on("createRoomSuccess", entered);
socket.on("getRequestsSuccess", ({ requests }) => {
  for (const { mediaId, status } of requests) statuses.set(mediaId, status);
  emit("matches");
});
socket.on("requestStatus", ({ mediaId, status }) => {
  const before = statuses.get(mediaId);
  statuses.set(mediaId, status);
  asking.delete(mediaId);
  emit("matches");
  if (before !== undefined && before !== status && status !== "none") {
    toast("REQUEST_NEWS", { title: titleOf(mediaId), state: t(STATUS_KEYS[status] ?? "REQUEST_STATUS_NONE") });
  }
});
socket.on("requestMediaSuccess", ({ mediaId }) => {
  asking.delete(mediaId);
  emit("matches");
});
socket.on("requestMediaError", (error) => {
  asking.delete(error.mediaId);
  emit("matches");
  const key = ERRORS[error.name];
  if (key) toast(key, {}, "error");
  else toast("REQUEST_FAILED_BECAUSE", { message: error.message ?? "" }, "error");
});

function request(media) {
  if (asking.has(media.id) || !socket.send("requestMedia", { mediaId: media.id })) return;
  asking.add(media.id);
  emit("matches");
}

/** For a matched title the library lacks: its state, and the owner's Request button; null otherwise. */
export function requestControl(media) {
  if (media.inLibrary !== false) return null;
  const status = statuses.get(media.id) ?? "none";
  const canAsk = isOwner() && REQUESTABLE.has(status);
  return h(
    "div",
    { class: "request", dataset: { status } },
    h("span", { class: "badge badge--missing" }, t("NOT_IN_LIBRARY")),
    " ",
    h("span", { class: "request__state" }, t(STATUS_KEYS[status] ?? "REQUEST_STATUS_NONE")),
    canAsk
      ? h(
          "button",
          {
            type: "button",
            class: "button button--secondary button--small request__button",
            disabled: asking.has(media.id),
            onclick: () => request(media),
            "aria-label": t("REQUEST_TITLE_LABEL", { title: media.title }),
          },
          icon("plus"),
          " ",
          t("REQUEST_TITLE"),
        )
      : null,
  );
}
