// After sign-in: join one of the host's standing rooms with a tap, a room by name or code (and
// password), a recent room, or go create one. When the name is someone else's seat in the room:
// join under another name, or type the seat code the room's owner read out (the owner handed this
// device the seat).

import { byId, clear, h, icon } from "../dom.js";
import { t } from "../i18n.js";
import { joinAs, joinRoom, signOut, socket } from "../session.js";
import { on, state } from "../state.js";
import { recentRooms } from "../storage.js";

const ERRORS = {
  RoomNotFoundError: "ERROR_ROOM_NOT_FOUND",
  AccessDeniedError: "ERROR_ACCESS_DENIED",
  RemovedFromRoom: "ERROR_REMOVED",
  RoomFull: "ERROR_ROOM_FULL",
  TooManyAttempts: "ERROR_TOO_MANY_ATTEMPTS",
  StorageUnavailable: "ERROR_STORAGE_UNAVAILABLE",
};
// What a wrong seat code gets: said beside the code's field.
const SEAT_CODE_ERRORS = {
  InvalidSeatCode: "ERROR_INVALID_SEAT_CODE",
  TooManyAttempts: "ERROR_TOO_MANY_ATTEMPTS",
};
// Six characters; typed in any case, with spaces (read out as "K7Q 2MX").
const SEAT_CODE = /^[A-Z0-9]{6}$/;

// What makes a match in a standing room, said under its name.
const ROOM_TYPES = { standard: "ROOM_TYPE_STANDARD_HINT", unanimous: "ROOM_TYPE_UNANIMOUS_HINT", solo: "ROOM_TYPE_SOLO_HINT" };

let taken = null; // {roomName, password} of the join refused because the name is someone else's seat
let standing = []; // listRooms' rooms: the ones the host keeps on this server, in its order

export function initLobby({ openCreate }) {
  const form = byId("join-form");
  const roomName = byId("join-room");
  const password = byId("join-password");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = roomName.value.trim();
    if (!name) {
      showError("FIELD_REQUIRED_ERROR", {}, roomName);
      return;
    }
    showError(null);
    if (joinRoom(name, password.value || undefined)) setBusy(true);
    else showError("ERROR_OFFLINE");
  });
  roomName.addEventListener("input", () => {
    showError(null);
    showTaken(null);
  });
  initTaken();
  byId("lobby-create").addEventListener("click", () => openCreate(roomName.value.trim()));
  byId("lobby-signout").addEventListener("click", signOut);
  let previous = null;
  on("shown", (screen) => {
    // What was reported before is stale now; what was typed is, unless coming back from the create screen.
    if (screen === "lobby") {
      resetJoin({ keepName: previous === "create" });
      update();
      listRooms();
    }
    previous = screen;
  });
  on("user", () => {
    if (!state.user) standing = [];
    else if (state.screen === "lobby") listRooms(); // signed in again on a new connection
    update();
  });
  socket.on("listRoomsSuccess", ({ rooms }) => {
    standing = rooms ?? [];
    renderStanding();
  });
  on("status", () => setBusy(false));
  on("joinError", (error) => {
    setBusy(false);
    roomName.value = error.roomName;
    if (error.seatCode && taken && SEAT_CODE_ERRORS[error.name]) {
      showFieldError("seat-code", SEAT_CODE_ERRORS[error.name]);
      return;
    }
    if (error.name === "UserAlreadyJoinedError") {
      showError(null);
      showTaken({ roomName: error.roomName, password: error.password });
      return;
    }
    showTaken(null);
    if (error.name === "AccessDeniedError") {
      password.value = "";
      showError(error.password ? "ERROR_WRONG_PASSWORD" : "ERROR_PASSWORD_NEEDED", { room: error.roomName }, password);
    } else {
      showError(ERRORS[error.name] ?? "ERROR_UNKNOWN", { room: error.roomName, user: state.user?.userName ?? "" }, roomName);
    }
  });
  on("room", () => setBusy(false));
}

function resetJoin({ keepName }) {
  if (!keepName) byId("join-room").value = "";
  byId("join-password").value = "";
  showError(null);
  showTaken(null);
  setBusy(false);
}

function initTaken() {
  const name = byId("rename-name");
  const code = byId("seat-code-input");
  byId("rename-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const userName = name.value.trim();
    if (!userName) return showFieldError("rename", "FIELD_REQUIRED_ERROR");
    showFieldError("rename", null);
    if (!joinAs(userName, taken.roomName, taken.password)) showFieldError("rename", "ERROR_OFFLINE");
  });
  byId("seat-code-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const seatCode = code.value.replace(/\s+/gu, "").toUpperCase();
    if (!SEAT_CODE.test(seatCode)) return showFieldError("seat-code", "ERROR_SEAT_CODE_FORMAT");
    showFieldError("seat-code", null);
    if (joinRoom(taken.roomName, taken.password, { seatCode })) setBusy(true);
    else showFieldError("seat-code", "ERROR_OFFLINE");
  });
  name.addEventListener("input", () => showFieldError("rename", null));
  code.addEventListener("input", () => showFieldError("seat-code", null));
}

/** Show the two ways into a room whose seat under this name is someone else's (null: hide them). */
function showTaken(attempt) {
  const panel = byId("taken");
  const fresh = attempt && !taken;
  taken = attempt;
  panel.hidden = !attempt;
  if (!fresh) return;
  const values = { room: attempt.roomName, user: state.user?.userName ?? "" };
  byId("taken-title").textContent = t("ERROR_USER_ALREADY_JOINED", values);
  byId("rename-name").value = "";
  byId("seat-code-input").value = "";
  showFieldError("rename", null);
  showFieldError("seat-code", null);
  // Read out from its heading (which says why); no keyboard pops up over the choice.
  if (state.screen === "lobby") {
    byId("taken-title").focus({ preventScroll: true });
    panel.scrollIntoView({ block: "start" });
  }
}

/** An error under one of the ways in ("rename", "seat-code"); null clears it. */
function showFieldError(form, key) {
  const input = byId(form === "rename" ? "rename-name" : "seat-code-input");
  byId(`${form}-error`).textContent = key ? t(key) : "";
  input.setAttribute("aria-invalid", String(Boolean(key)));
  if (key && state.screen === "lobby") input.focus();
}

function update() {
  const user = state.user;
  byId("lobby-user").textContent = user ? user.userName : "";
  byId("lobby-greeting").textContent = user ? t("LOBBY_GREETING", { user: user.userName }) : "";
  renderStanding();
  renderRecent();
}

/** Ask for the standing rooms (the host may have brought one up since). */
function listRooms() {
  if (state.user) socket.send("listRooms");
}

/** The host's rooms, each joined with a tap; one with a password asks for it first. */
function renderStanding() {
  byId("standing").hidden = standing.length === 0;
  const list = clear(byId("standing-list"));
  for (const room of standing) {
    list.append(
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "recent__room standing__room", onclick: () => joinStanding(room) },
          icon("users"),
          // Spaces between the parts: the button's name reads "Staff Room A film matches … Password needed".
          h(
            "span",
            { class: "standing__text" },
            h("span", { class: "standing__name" }, room.roomName),
            " ",
            h("span", { class: "standing__type" }, t(ROOM_TYPES[room.roomType] ?? ROOM_TYPES.standard)),
          ),
          room.hasPassword
            ? h(
                "span",
                { class: "standing__lock", title: t("HAS_PASSWORD") },
                " ",
                icon("lock"),
                h("span", { class: "visually-hidden" }, t("HAS_PASSWORD")),
              )
            : null,
        ),
      ),
    );
  }
}

function joinStanding({ roomName, hasPassword }) {
  const password = byId("join-password");
  byId("join-room").value = roomName;
  password.value = "";
  showTaken(null);
  if (hasPassword) showError("ERROR_PASSWORD_NEEDED", { room: roomName }, password);
  else byId("join-form").requestSubmit();
}

function renderRecent() {
  const rooms = recentRooms.get();
  byId("recent").hidden = rooms.length === 0;
  const list = clear(byId("recent-list"));
  for (const name of rooms) {
    list.append(
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "recent__room",
            onclick: () => {
              byId("join-room").value = name;
              byId("join-form").requestSubmit();
            },
          },
          icon("clock"),
          h("span", {}, name),
        ),
      ),
    );
  }
}

function setBusy(busy) {
  for (const form of [byId("join-form"), byId("seat-code-form")]) {
    form.querySelector("[type=submit]").disabled = busy;
    form.setAttribute("aria-busy", String(busy));
  }
}

function showError(key, values = {}, field = null) {
  byId("join-error").textContent = key ? t(key, values) : "";
  for (const input of [byId("join-room"), byId("join-password")]) {
    input.setAttribute("aria-invalid", String(input === field));
  }
  if (field && state.screen === "lobby") field.focus();
}
