// The connection banner: shown only when the socket has been down for a moment, so a quick
// reconnect (a server restart, a network hand-over) is barely noticed.

import { byId } from "./dom.js";

const SHOW_AFTER_MS = 1200;
const banner = byId("connection");
let timer = 0;

export function showConnection(status) {
  clearTimeout(timer);
  document.body.classList.toggle("offline", status !== "open");
  if (status === "open") {
    banner.hidden = true;
    return;
  }
  timer = setTimeout(() => {
    banner.hidden = false;
  }, SHOW_AFTER_MS);
}
