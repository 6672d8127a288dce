// A yes/no question in a dialog (leave or delete a room, remove a member, hand the room over).

import { byId } from "./dom.js";
import { t } from "./i18n.js";

const dialog = byId("confirm");

export function confirmAction({ message, values = {}, confirm, danger = false }) {
  byId("confirm-message").textContent = t(message, values);
  const yes = byId("confirm-yes");
  yes.textContent = t(confirm);
  yes.classList.toggle("button--danger", danger);
  yes.classList.toggle("button--primary", !danger);
  dialog.returnValue = "";
  dialog.showModal();
  byId("confirm-no").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}
