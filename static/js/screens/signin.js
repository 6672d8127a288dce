// Sign in with a name, with Plex, or with Jellyfin (a password or Quick Connect) when the server offers them.

import { byId, clear, h } from "../dom.js";
import { t } from "../i18n.js";
import { DECK_WINDOW, signIn, socket } from "../session.js";
import { on, state } from "../state.js";
import { plexClientId } from "../storage.js";

const ERRORS = {
  PlexLoginRequired: "ERROR_PLEX_LOGIN_REQUIRED",
  PlexAuthInvalid: "ERROR_PLEX_AUTH_INVALID",
  PlexUnavailable: "ERROR_PLEX_UNAVAILABLE",
  InvalidUserName: "ERROR_INVALID_USER_NAME",
  JellyfinAuthInvalid: "ERROR_JELLYFIN_AUTH_INVALID",
  JellyfinUnavailable: "ERROR_JELLYFIN_UNAVAILABLE",
  QuickConnectUnavailable: "ERROR_QUICK_CONNECT_UNAVAILABLE",
  TooManyAttempts: "ERROR_TOO_MANY_SIGN_INS",
};
// Quick Connect: how often to ask whether the code was entered (Jellyfin keeps it ten minutes).
const QUICK_CONNECT_POLL_MS = 2000;

let plexAbort = null;
let quickConnect = null; // the poll timer of a Quick Connect sign-in under way

export function initSignIn() {
  const form = byId("signin-form");
  const name = byId("signin-name");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const userName = name.value.trim();
    if (!userName) {
      showError("FIELD_REQUIRED_ERROR");
      name.focus();
      return;
    }
    showError(null);
    if (!signIn({ userName })) showError("ERROR_OFFLINE");
  });
  name.addEventListener("input", () => showError(null));
  byId("signin-plex-button").addEventListener("click", startPlex);
  byId("plex-cancel").addEventListener("click", () => plexAbort?.abort());
  byId("jellyfin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const jellyfinUser = byId("jellyfin-user").value.trim();
    if (!jellyfinUser) {
      showError("FIELD_REQUIRED_ERROR");
      byId("jellyfin-user").focus();
      return;
    }
    showError(null);
    // The password goes to this server once, for Jellyfin; only the session ticket of the answer is kept.
    const login = { jellyfinServer: jellyfinServer(), jellyfinUser, jellyfinPassword: byId("jellyfin-password").value };
    byId("jellyfin-password").value = "";
    if (!signIn(login)) showError("ERROR_OFFLINE");
  });
  byId("jellyfin-server").addEventListener("change", update);
  byId("jellyfin-quick-connect").addEventListener("click", startQuickConnect);
  byId("jellyfin-cancel").addEventListener("click", stopQuickConnect);
  socket.on("jellyfinQuickConnectCode", ({ code }) => showCode(code));
  socket.on("jellyfinQuickConnectPending", () => {
    if (quickConnect !== null) quickConnect = setTimeout(checkQuickConnect, QUICK_CONNECT_POLL_MS);
  });
  on("user", () => {
    if (state.user) stopQuickConnect();
  });
  on("status", (status) => {
    if (status !== "open") stopQuickConnect();
  });
  on("config", update);
  on("shown", (screen) => {
    if (screen === "signin") update();
  });
  on("signinError", (error) => {
    stopPlex();
    stopQuickConnect();
    showError(ERRORS[error.name] ?? "ERROR_UNKNOWN");
  });
}

/** The Jellyfin servers offering sign-in, and the one chosen. */
const jellyfinServers = () => state.config?.jellyfinSignIn ?? [];
const jellyfinServer = () => byId("jellyfin-server").value || jellyfinServers()[0]?.id;

function update() {
  const config = state.config ?? {};
  byId("signin-form").hidden = Boolean(config.requirePlexLogin);
  byId("signin-plex").hidden = !config.plexSignIn;
  byId("signin-or").hidden = Boolean(config.requirePlexLogin) || !config.plexSignIn;
  const servers = jellyfinServers();
  byId("signin-jellyfin").hidden = !servers.length;
  byId("signin-or-jellyfin").hidden = Boolean(config.requirePlexLogin) && !config.plexSignIn;
  const select = byId("jellyfin-server");
  const chosen = select.value;
  if (select.options.length !== servers.length || [...select.options].some((o, i) => o.value !== servers[i].id)) {
    clear(select).append(...servers.map((server) => h("option", { value: server.id }, server.name)));
    if (servers.some((server) => server.id === chosen)) select.value = chosen;
  }
  byId("jellyfin-server-field").hidden = servers.length < 2;
  const server = servers.find((candidate) => candidate.id === jellyfinServer());
  byId("jellyfin-quick-connect").hidden = !server?.quickConnect;
  const note = byId("signin-room-note");
  note.hidden = !state.target;
  if (state.target) note.textContent = t("SIGNIN_TO_JOIN", { room: state.target.roomName });
  const saved = state.identity?.userName;
  if (saved && !byId("signin-name").value) byId("signin-name").value = saved;
}

function showError(key) {
  const error = byId("signin-error");
  error.textContent = key ? t(key) : "";
  byId("signin-name").setAttribute("aria-invalid", String(key === "FIELD_REQUIRED_ERROR"));
}

async function startPlex() {
  const config = state.config;
  if (!config?.plexSignIn || plexAbort) return;
  showError(null);
  // Opened now, inside the click, so popup blockers allow it; pointed at plex.tv once we have a PIN.
  // (It keeps its opener: only the opener may close it again when the sign-in is done.)
  const popup = window.open("", "_blank");
  plexAbort = new AbortController();
  const waiting = byId("plex-waiting");
  const link = byId("plex-open");
  link.hidden = true;
  waiting.hidden = false;
  byId("signin-plex-button").disabled = true;
  const clientId = plexClientId();
  try {
    const { plexSignIn } = await import("../plex.js");
    const plexToken = await plexSignIn({
      tvUrl: config.plexTvUrl,
      appUrl: config.plexAppUrl,
      clientId,
      popup,
      signal: plexAbort.signal,
      onUrl: (url) => {
        link.href = url;
        link.hidden = false;
      },
    });
    // Kept even if the connection is down this moment: the next connection signs in with it.
    state.identity = { plexToken, plexClientId: clientId };
    if (!signIn(state.identity)) showError("ERROR_OFFLINE");
  } catch {
    if (!plexAbort?.signal.aborted) showError("ERROR_PLEX_FAILED");
    if (popup && !popup.closed) popup.close();
  } finally {
    stopPlex();
  }
}

function stopPlex() {
  plexAbort = null;
  byId("plex-waiting").hidden = true;
  byId("signin-plex-button").disabled = false;
}

function startQuickConnect() {
  if (quickConnect !== null) return;
  showError(null);
  if (!socket.send("jellyfinQuickConnect", { jellyfinServer: jellyfinServer(), window: DECK_WINDOW })) {
    showError("ERROR_OFFLINE");
    return;
  }
  quickConnect = 0; // under way: the code comes back, then the checks begin
  byId("jellyfin-quick-connect").disabled = true;
}

function showCode(code) {
  if (quickConnect === null) return;
  byId("jellyfin-code").textContent = code;
  byId("jellyfin-waiting").hidden = false;
  quickConnect = setTimeout(checkQuickConnect, QUICK_CONNECT_POLL_MS);
}

function checkQuickConnect() {
  if (quickConnect !== null) socket.send("jellyfinQuickConnectCheck");
}

function stopQuickConnect() {
  if (quickConnect) clearTimeout(quickConnect);
  quickConnect = null;
  byId("jellyfin-waiting").hidden = true;
  byId("jellyfin-code").textContent = "";
  byId("jellyfin-quick-connect").disabled = false;
}
