// Start-up: wire the screens to the session, and show the right screen once strings are here.

import { initConnection, showConnection } from "./connection.js";
import { initDialogs } from "./dialogs.js";
import { byId } from "./dom.js";
import { onTranslations, ready, restore } from "./i18n.js";
import { initPeople } from "./people.js";
import { initPlayers } from "./players.js";
import { initLobby } from "./screens/lobby.js";
import { initRoom } from "./screens/room.js";
import { initSignIn } from "./screens/signin.js";
import { setScreen, socket, start } from "./session.js";
import { emit, on, state } from "./state.js";
import { toast } from "./toast.js";
import { initWatchlist } from "./watchlist.js";

const SCREENS = ["signin", "lobby", "create", "room"];

function render() {
  const screen = ready() && SCREENS.includes(state.screen) ? state.screen : "boot";
  const previous = document.body.dataset.screen;
  document.body.dataset.screen = screen;
  byId("boot").hidden = screen !== "boot";
  for (const name of SCREENS) byId(`screen-${name}`).hidden = name !== screen;
  if (screen !== previous) {
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    if (screen !== "room") document.title = "MovieMatch";
    emit("shown", screen);
    focusScreen(screen);
  }
}

/** Move focus to the new screen, so keyboard and screen reader users land where the content is. */
function focusScreen(screen) {
  const target = {
    signin: byId("signin-form").hidden ? byId("signin-plex-button") : byId("signin-name"),
    lobby: byId("join-room"),
    create: byId("create-name"),
    room: byId("room-name"),
  }[screen];
  if (target && !target.closest("[hidden]")) target.focus({ preventScroll: true });
}

// The create screen is loaded when first needed (it is most of the code nobody joining a room uses),
// and it is a history entry, so a phone's back gesture returns to the lobby.
let createScreen = null;

async function openCreateScreen(roomName) {
  if (!createScreen) {
    createScreen = import("./screens/create.js").then((module) => {
      module.initCreate({ back: closeCreateScreen });
      return module;
    });
  }
  const { openCreate } = await createScreen;
  if (history.state?.screen !== "create") history.pushState({ screen: "create" }, "");
  openCreate(roomName);
}

addEventListener("popstate", () => {
  if (state.screen === "create") setScreen("lobby");
});
on("screen", (screen) => {
  // Left by other means (room created, signed out): forget the entry's meaning, keep the URL.
  if (screen !== "create" && history.state?.screen === "create") history.replaceState(null, "");
});

function closeCreateScreen() {
  if (history.state?.screen === "create") history.back();
  else setScreen("lobby");
}

// A reload on the create screen starts over in the lobby: that history entry means nothing now.
if (history.state?.screen === "create") history.replaceState(null, "");
/** The banner and the toasts stand just below the shown screen's top bar, whose height changes with
 * the screen, the language and the room's rule (it wraps on a narrow phone): measured, not guessed. */
function placeBelowTopBar() {
  const bar = [...document.querySelectorAll(".topbar")].find((element) => element.offsetParent !== null);
  if (bar) document.documentElement.style.setProperty("--bar-height", `${bar.offsetHeight}px`);
  else document.documentElement.style.removeProperty("--bar-height");
}

restore();
const bars = new ResizeObserver(placeBelowTopBar);
for (const bar of document.querySelectorAll(".topbar")) bars.observe(bar);
initDialogs();
initConnection();
initSignIn();
initLobby({ openCreate: openCreateScreen });
initRoom();
initWatchlist();
initPlayers();
initPeople();
on("screen", render);
on("status", (status) => showConnection(status, socket.failures));
on("toast", toast);
onTranslations(render);
render();
start();
showConnection(socket.status);

// Offline start for the installed app (static/sw.js); its scope is the app's root, under any sub-path.
if ("serviceWorker" in navigator) {
  addEventListener("load", () => {
    const version = encodeURIComponent(document.body.dataset.version || "");
    navigator.serviceWorker.register(`sw.js?v=${version}`).catch(() => {
      // No offline start (a private window, or plain http on a LAN address): the app works as before.
    });
  });
}
