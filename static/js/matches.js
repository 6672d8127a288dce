// The list of matches: most recent or most liked first, each with who liked it and a link.

import { byId, clear, h, icon } from "./dom.js";
import { facts, linkLabel, timeAgo } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { playControl } from "./players.js";
import { poster } from "./poster.js";
import { requestControl } from "./requests.js";

const SORTS = {
  recent: (a, b) => b.matchedAt - a.matchedAt,
  likes: (a, b) => b.users.length - a.users.length || b.matchedAt - a.matchedAt,
};

function sortMatches(matches, order) {
  return [...matches].sort(SORTS[order] ?? SORTS.recent);
}

/** Render the list; onOpen(media) shows a match's details; the badge counts those not in `seen`. */
export function renderMatches(matches, { order, onOpen, seen }) {
  const list = clear(byId("matches-list"));
  const sorted = sortMatches(matches, order);
  byId("matches-empty").hidden = sorted.length > 0;
  for (const match of sorted) list.append(matchItem(match, onOpen));
  byId("matches-count").textContent = sorted.length ? String(sorted.length) : "";
  const unseen = sorted.filter((match) => !seen.has(match.media.id)).length;
  const badge = byId("tab-matches-badge");
  badge.textContent = unseen ? String(unseen) : "";
  badge.hidden = !unseen;
}

function matchItem(match, onOpen) {
  const media = match.media;
  return h(
    "li",
    { class: "match-item" },
    h(
      "button",
      { type: "button", class: "match-item__open", onclick: () => onOpen(media), "aria-label": t("SHOW_DETAILS_OF", { title: media.title }) },
      poster(media, { className: "match-item__poster", widths: [160, 320], sizes: "64px" }),
    ),
    h(
      "div",
      { class: "match-item__text" },
      h("h3", { class: "match-item__title" }, media.title),
      h("p", { class: "match-item__facts" }, facts(media).join(" · ")),
      h(
        "p",
        { class: "match-item__likers" },
        icon("heart", "icon icon--small icon--like"),
        " ",
        t("MATCH_LIKED_BY", { users: formatList(match.users), count: match.users.length }),
      ),
      h("p", { class: "match-item__when" }, h("time", { datetime: new Date(match.matchedAt).toISOString() }, t("MATCHED_WHEN", { when: timeAgo(match.matchedAt) }))),
      requestControl(media),
      playControl(media),
    ),
    media.linkUrl
      ? h(
          "a",
          {
            class: "icon-button",
            href: resolve(media.linkUrl),
            target: "_blank",
            rel: "noopener",
            "aria-label": `${linkLabel(media)}: ${media.title}`,
            title: linkLabel(media),
          },
          icon("external"),
        )
      : null,
  );
}
