// The connection's state in words: on the boot screen before the first connection, in a banner
// after it. Shown only once the socket has been down for a moment, counted from when it went down
// (not from each retry), so a quick reconnect is barely noticed. After a few failed attempts the
// server is asked over plain HTTP: if it answers, something in between (a reverse proxy) refuses
// the WebSocket, and the words say so.

import { byId } from "./dom.js";
import { t } from "./i18n.js";

const SHOW_AFTER_MS = 1200;
const PROBE_EVERY = 3; // failed attempts in a row

const banner = byId("connection");
let downSince = 0;
let timer = 0;
let visible = false;
let everOpen = false;
let problem = null; // null | "unreachable" | "blocked"
let probing = false;

/** status: the socket's (connecting | open | closed); failures: its attempts in a row that never opened. */
export function showConnection(status, failures = 0) {
  document.body.classList.toggle("offline", status !== "open");
  if (status === "open") {
    everOpen = true;
    clearTimeout(timer);
    downSince = timer = 0;
    problem = null;
    render(false);
    return;
  }
  if (!downSince) {
    downSince = Date.now();
    timer = setTimeout(() => render(true), SHOW_AFTER_MS);
  }
  if (status === "closed" && failures > 0 && failures % PROBE_EVERY === 0) probe();
}

export function initConnection() {
  addEventListener("online", () => visible && render(true));
  addEventListener("offline", () => visible && render(true));
}

function words() {
  if (!navigator.onLine) return "DEVICE_OFFLINE";
  if (problem === "blocked") return "WEBSOCKET_BLOCKED";
  if (problem === "unreachable") return "SERVER_UNREACHABLE";
  return everOpen ? "CONNECTION_LOST" : "CONNECTING";
}

function render(show) {
  visible = show;
  const text = show ? t(words()) : "";
  banner.hidden = !show || !everOpen;
  banner.classList.toggle("connection--problem", problem === "blocked");
  byId("connection-text").textContent = text;
  const status = byId("boot-status");
  status.textContent = text;
  status.classList.toggle("boot__status--problem", problem === "blocked");
  // No endless spinner for a problem that waiting will not solve.
  byId("boot-spinner").hidden = problem === "blocked";
}

async function probe() {
  if (probing) return;
  probing = true;
  let found = "unreachable";
  try {
    const response = await fetch("health", { cache: "no-store" });
    const body = await response.json();
    if (typeof body?.status === "string") found = "blocked"; // the server itself answered
  } catch {
    // No answer, or not the server's (a proxy's error page): the server is down or out of reach.
  }
  probing = false;
  if (!downSince) return; // connected meanwhile
  problem = found;
  if (visible) render(true);
}
