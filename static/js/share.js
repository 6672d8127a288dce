// Sharing a room: the system share sheet when there is one, a copyable link, a QR code, and the
// room's join code to read out.

import { copyText } from "./clipboard.js";
import { byId } from "./dom.js";
import { showCode } from "./format.js";
import { isLoopback, qrCodeUrl, roomLink, shareBase } from "./links.js";
import { state } from "./state.js";
import { toast } from "./toast.js";

const dialog = byId("share-dialog");
let current = "";

export function initShare() {
  const native = byId("share-native");
  native.hidden = typeof navigator.share !== "function";
  native.addEventListener("click", async () => {
    try {
      await navigator.share({ title: "MovieMatch", url: current });
    } catch {
      // Cancelled by the user, or not allowed: the link and the QR code are still there.
    }
  });
  byId("share-copy").addEventListener("click", copy);
  byId("share-url").addEventListener("focus", (event) => event.target.select());
}

export function openShare(room) {
  const base = shareBase(state.config);
  current = roomLink(room.name, base);
  byId("share-local").hidden = !isLoopback(base.hostname);
  byId("share-room").textContent = room.name;
  byId("share-code").closest(".share__code").hidden = !room.joinCode;
  showCode(byId("share-code"), byId("share-code-spoken"), room.joinCode);
  byId("share-url").value = current;
  const qr = byId("share-qr");
  qr.src = qrCodeUrl(current);
  byId("share-password").hidden = !room.password;
  dialog.showModal();
  byId("share-copy").focus();
}

async function copy() {
  const copied = await copyText(current, dialog);
  toast(copied ? { key: "COPY_LINK_SUCCESS" } : { key: "COPY_LINK_FAILURE", kind: "error" });
}
