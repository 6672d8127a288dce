// After sign-in: join a room by name (and password), pick a recent room, or go create one.

import { byId, clear, h, icon } from "../dom.js";
import { t } from "../i18n.js";
import { joinRoom, signOut } from "../session.js";
import { on, state } from "../state.js";
import { recentRooms } from "../storage.js";

const ERRORS = {
  RoomNotFoundError: "ERROR_ROOM_NOT_FOUND",
  AccessDeniedError: "ERROR_ACCESS_DENIED",
  UserAlreadyJoinedError: "ERROR_USER_ALREADY_JOINED",
};

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
  roomName.addEventListener("input", () => showError(null));
  byId("lobby-create").addEventListener("click", () => openCreate(roomName.value.trim()));
  byId("lobby-signout").addEventListener("click", signOut);
  let previous = null;
  on("shown", (screen) => {
    // What was reported before is stale now; what was typed is, unless coming back from the create screen.
    if (screen === "lobby") {
      resetJoin({ keepName: previous === "create" });
      update();
    }
    previous = screen;
  });
  on("user", update);
  on("status", () => setBusy(false));
  on("joinError", (error) => {
    setBusy(false);
    roomName.value = error.roomName;
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
  setBusy(false);
}

function update() {
  const user = state.user;
  byId("lobby-user").textContent = user ? user.userName : "";
  byId("lobby-greeting").textContent = user ? t("LOBBY_GREETING", { user: user.userName }) : "";
  renderRecent();
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
  byId("join-submit").disabled = busy;
  byId("join-form").setAttribute("aria-busy", String(busy));
}

function showError(key, values = {}, field = null) {
  byId("join-error").textContent = key ? t(key, values) : "";
  for (const input of [byId("join-room"), byId("join-password")]) {
    input.setAttribute("aria-invalid", String(input === field));
  }
  if (field && state.screen === "lobby") field.focus();
}
