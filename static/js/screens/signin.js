// Sign in with a name, or with Plex when the server offers it.

import { byId } from "../dom.js";
import { t } from "../i18n.js";
import { signIn } from "../session.js";
import { on, state } from "../state.js";
import { plexClientId } from "../storage.js";

const ERRORS = {
  PlexLoginRequired: "ERROR_PLEX_LOGIN_REQUIRED",
  PlexAuthInvalid: "ERROR_PLEX_AUTH_INVALID",
  PlexUnavailable: "ERROR_PLEX_UNAVAILABLE",
  InvalidUserName: "ERROR_INVALID_USER_NAME",
};

let plexAbort = null;

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
  on("config", update);
  on("shown", (screen) => {
    if (screen === "signin") update();
  });
  on("signinError", (error) => {
    stopPlex();
    showError(ERRORS[error.name] ?? "ERROR_UNKNOWN");
  });
}

function update() {
  const config = state.config ?? {};
  byId("signin-form").hidden = Boolean(config.requirePlexLogin);
  byId("signin-plex").hidden = !config.plexSignIn;
  byId("signin-or").hidden = Boolean(config.requirePlexLogin) || !config.plexSignIn;
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
