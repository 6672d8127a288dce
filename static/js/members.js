// Who is in the room, how far through the deck each of them is, and who owns it. The owner sees
// every member (getMembers: also those away, and those removed), each with a button to their tools.

import { byId, clear, h, icon } from "./dom.js";
import { hue, initials, percent, timeAgo } from "./format.js";
import { t } from "./i18n.js";

/** The members to list: the owner's full list, else those connected now. */
export function memberEntries(room) {
  if (!room.roster) return [...room.users.values()].map(({ user, progress }) => ({ user, progress, online: true }));
  return room.roster.map((member) => ({
    user: room.users.get(member.userName)?.user ?? { userName: member.userName },
    progress: member.progress,
    online: member.online,
    lastSeen: member.lastSeen,
  }));
}

/** "here now", "last seen 2 hours ago" (only the owner's list knows who is away). */
export function memberStatus(entry, now = Date.now()) {
  if (entry.online) return t("MEMBER_ONLINE");
  if (now - entry.lastSeen < 60_000) return t("MEMBER_SEEN_JUST_NOW");
  return t("MEMBER_LAST_SEEN", { when: timeAgo(entry.lastSeen, now) });
}

/** manage(entry) opens the owner's tools for a member, readmit(name) lets a removed one back in;
 * both null for everyone but the owner. */
export function renderMembers(room, { manage = null, readmit = null } = {}) {
  const me = room.me;
  // The list is drawn anew on every change (progress moves all the time): keep the keyboard's place.
  const focused = document.activeElement?.dataset?.focus;
  const list = clear(byId("members"));
  const entries = memberEntries(room).sort((a, b) => {
    if (a.user.userName === me) return -1;
    if (b.user.userName === me) return 1;
    return a.user.userName.localeCompare(b.user.userName);
  });
  for (const entry of entries) {
    const { user, progress } = entry;
    const name = user.userName;
    const label = name === me ? t("MEMBER_YOU", { user: name }) : name;
    const owner = name === room.owner ? h("span", { class: "badge member__owner" }, icon("crown", "icon icon--small"), t("MEMBER_OWNER")) : null;
    const status = room.roster ? h("span", { class: "member__status" }, memberStatus(entry)) : null;
    const bar = h("progress", { class: "progress", max: "1", value: String(progress), "aria-label": t("PROGRESS_OF", { user: name }) });
    const tools = manage
      ? h(
          "button",
          {
            type: "button",
            class: "icon-button member__manage",
            "aria-label": t("MANAGE_MEMBER", { user: name }),
            title: t("MANAGE_MEMBER", { user: name }),
            "aria-haspopup": "dialog",
            dataset: { focus: `manage:${name}` },
            onclick: () => manage(entry),
          },
          icon("more"),
        )
      : null;
    list.append(
      h(
        "li",
        { class: `member${entry.online ? "" : " member--away"}${tools ? " member--managed" : ""}` },
        avatar(user),
        h("span", { class: "member__who" }, h("span", { class: "member__name" }, label), owner, status),
        h("span", { class: "member__progress" }, percent(progress)),
        tools,
        bar,
      ),
    );
  }
  byId("members-count").textContent = String(entries.length);
  renderRemoved(room.removed ?? [], readmit);
  if (focused && !refocus(focused)) byId("people-title").focus({ preventScroll: true });
}

/** Focus a button of the lists again ("manage:Bob", "readmit:Bob"); false when it is not there. */
export function refocus(key) {
  const button = [...document.querySelectorAll("#panel-people [data-focus]")].find((el) => el.dataset.focus === key);
  button?.focus({ preventScroll: true });
  return Boolean(button);
}

export function avatar(user) {
  const name = user.userName;
  const element = h("span", { class: "avatar", "aria-hidden": "true" }, initials(name));
  element.style.setProperty("--hue", String(hue(name)));
  if (user.avatarImage) {
    // A Plex avatar; the initials stay when it cannot be shown.
    const image = h("img", { class: "avatar__image", src: user.avatarImage, alt: "", referrerpolicy: "no-referrer" });
    image.addEventListener("error", () => image.remove(), { once: true });
    element.append(image);
  }
  return element;
}

function renderRemoved(names, readmit) {
  const shown = readmit ? names : [];
  byId("removed").hidden = shown.length === 0;
  const list = clear(byId("removed-list"));
  for (const name of shown) {
    list.append(
      h(
        "li",
        { class: "removed__member" },
        h("span", { class: "removed__name" }, name),
        h(
          "button",
          {
            type: "button",
            class: "button button--secondary button--small",
            "aria-label": t("READMIT_LABEL", { user: name }),
            dataset: { focus: `readmit:${name}` },
            onclick: (event) => readmit(name, event.currentTarget),
          },
          t("READMIT"),
        ),
      ),
    );
  }
}
