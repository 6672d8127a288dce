// Who is in the room, and how far through the deck each of them is.

import { byId, clear, h } from "./dom.js";
import { hue, initials, percent } from "./format.js";
import { t } from "./i18n.js";

export function renderMembers(users, me) {
  const list = clear(byId("members"));
  const entries = [...users.values()].sort((a, b) => {
    if (a.user.userName === me) return -1;
    if (b.user.userName === me) return 1;
    return a.user.userName.localeCompare(b.user.userName);
  });
  for (const { user, progress } of entries) {
    const name = user.userName;
    const avatar = h("span", { class: "avatar", "aria-hidden": "true" }, initials(name));
    avatar.style.setProperty("--hue", String(hue(name)));
    if (user.avatarImage) {
      // A Plex avatar; the initials stay when it cannot be shown.
      const image = h("img", { class: "avatar__image", src: user.avatarImage, alt: "", referrerpolicy: "no-referrer" });
      image.addEventListener("error", () => image.remove(), { once: true });
      avatar.append(image);
    }
    const label = name === me ? t("MEMBER_YOU", { user: name }) : name;
    const bar = h("progress", { class: "progress", max: "1", value: String(progress), "aria-label": t("PROGRESS_OF", { user: name }) });
    list.append(
      h(
        "li",
        { class: "member" },
        avatar,
        h("span", { class: "member__name" }, label),
        h("span", { class: "member__progress" }, percent(progress)),
        bar,
      ),
    );
  }
  byId("members-count").textContent = String(entries.length);
}
