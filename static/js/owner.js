// The room owner's tools for one member: hand their seat to a new device (a one-time code, shown
// large to read out across the sofa), make them the owner, remove them; and let a removed member
// back in.

import { copyText } from "./clipboard.js";
import { confirmAction } from "./confirm.js";
import { byId } from "./dom.js";
import { showCode as writeCode } from "./format.js";
import { lang, t } from "./i18n.js";
import { memberStatus, refocus } from "./members.js";
import { manageMember } from "./session.js";
import { state } from "./state.js";
import { toast } from "./toast.js";

const ERRORS = {
  NotRoomOwner: "ERROR_NOT_OWNER",
  NoSuchMember: "ERROR_NO_SUCH_MEMBER",
  NotInRoom: "ERROR_OFFLINE",
  StorageUnavailable: "ERROR_STORAGE_UNAVAILABLE",
  disconnected: "ERROR_OFFLINE",
};

const dialog = byId("member-dialog");
let shown = null; // the name of the member whose tools are open
let code = ""; // the seat code on show
let expiry = 0;

export function initOwnerTools() {
  byId("member-offer").addEventListener("click", offerSeat);
  byId("seat-code-new").addEventListener("click", offerSeat);
  byId("member-owner").addEventListener("click", makeOwner);
  byId("member-remove").addEventListener("click", remove);
  byId("seat-code-copy").addEventListener("click", async () => {
    const copied = await copyText(code, dialog);
    toast(copied ? { key: "COPY_CODE_SUCCESS" } : { key: "COPY_CODE_FAILURE", kind: "error" });
  });
  dialog.addEventListener("close", () => {
    clearTimeout(expiry);
    // Back to the member's button, drawn anew meanwhile (or gone: the list's heading).
    const lost = !document.activeElement || document.activeElement === document.body;
    if (lost && !refocus(`manage:${shown}`)) byId("people-title").focus({ preventScroll: true });
    shown = null;
    code = "";
  });
}

/** The tools for a member of the list (renderMembers' entry). */
export function openMember(entry) {
  const name = entry.user.userName;
  const self = name === state.room?.me;
  shown = name;
  byId("member-title").textContent = self ? t("MEMBER_YOU", { user: name }) : name;
  byId("member-status").textContent = memberStatus(entry);
  // The owner may move their own seat to a new device; removing or promoting themselves means nothing.
  byId("member-owner").hidden = self;
  byId("member-remove").hidden = self;
  showCode(null);
  showError(null);
  dialog.showModal();
  byId("member-offer").focus();
}

/** Let a removed member join again (from the list of removed members). */
export async function readmit(name, button) {
  button.disabled = true;
  try {
    await manageMember(name, "readmit");
    toast({ key: "READMITTED", values: { user: name } });
  } catch (error) {
    toast({ key: ERRORS[error.message] ?? "ERROR_UNKNOWN", values: { user: name }, kind: "error" });
    button.disabled = false;
  }
}

async function offerSeat() {
  const reply = await act("offerSeat");
  if (reply) showCode(reply);
}

async function makeOwner() {
  const name = shown;
  const question = { message: "MAKE_OWNER_CONFIRM", values: { user: name }, confirm: "MAKE_OWNER" };
  if (!(await confirmAction(question))) return;
  if (await act("makeOwner")) {
    dialog.close();
    toast({ key: "OWNER_NOW", values: { user: name } });
  }
}

async function remove() {
  const name = shown;
  const question = { message: "REMOVE_MEMBER_CONFIRM", values: { user: name }, confirm: "REMOVE_MEMBER", danger: true };
  if (!(await confirmAction(question))) return;
  if (await act("remove")) {
    dialog.close();
    toast({ key: "MEMBER_REMOVED_TOAST", values: { user: name } });
  }
}

/** Send the action for the member shown; its reply, or null (the error is said in the dialog). */
async function act(action) {
  const name = shown;
  if (!name) return null;
  showError(null);
  setBusy(true);
  try {
    return await manageMember(name, action);
  } catch (error) {
    const key = ERRORS[error.message] ?? "ERROR_UNKNOWN";
    if (shown === name) showError(key, { user: name });
    else toast({ key, values: { user: name }, kind: "error" });
    return null;
  } finally {
    setBusy(false);
  }
}

/** The seat code, grouped in threes to read out ("K7Q 2MX"), and how long it works. */
function showCode(reply) {
  clearTimeout(expiry);
  code = reply?.seatCode ?? "";
  byId("member-actions").hidden = Boolean(reply);
  byId("member-code").hidden = !reply;
  if (!reply) return;
  const name = shown;
  const seconds = Number(reply.expiresIn) || 600;
  const until = new Intl.DateTimeFormat(lang(), { timeStyle: "short" }).format(Date.now() + seconds * 1000);
  byId("member-code").classList.remove("seat-code--expired");
  byId("seat-code-for").textContent = t("SEAT_CODE_FOR", { user: name });
  writeCode(byId("seat-code"), byId("seat-code-spoken"), code);
  byId("seat-code-valid").textContent = t("SEAT_CODE_VALID", { minutes: Math.round(seconds / 60), time: until });
  byId("seat-code-how").textContent = t("SEAT_CODE_HOW", { user: name });
  byId("seat-code-copy").hidden = false;
  byId("seat-code-new").hidden = true;
  byId("seat-code-copy").focus();
  expiry = setTimeout(() => {
    byId("member-code").classList.add("seat-code--expired");
    byId("seat-code-valid").textContent = t("SEAT_CODE_EXPIRED");
    byId("seat-code-copy").hidden = true;
    byId("seat-code-new").hidden = false;
    byId("seat-code-new").focus();
  }, seconds * 1000);
}

function setBusy(busy) {
  for (const id of ["member-offer", "member-owner", "member-remove", "seat-code-new"]) byId(id).disabled = busy;
  dialog.setAttribute("aria-busy", String(busy));
}

function showError(key, values = {}) {
  byId("member-error").textContent = key ? t(key, values) : "";
}
