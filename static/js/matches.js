// The results of a room: its matches (most liked first, or most recent), the pick made for everyone
// ("pick one for us"), and once this member's deck is done the closest calls (liked, but not enough
// for a match); each film with who liked it and its link to the media server.

import { byId, clear, h, icon } from "./dom.js";
import { facts, linkLabel, timeAgo } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { playControl } from "./players.js";
import { poster } from "./poster.js";
import { requestControl } from "./requests.js";
import { deckDone } from "./state.js";

// Most liked first, as the server ranks results: ties by the earlier match.
const SORTS = {
  likes: (a, b) => b.users.length - a.users.length || a.matchedAt - b.matchedAt,
  recent: (a, b) => b.matchedAt - a.matchedAt,
};

/**
 * Render the panel. onOpen(media) shows a film's details; the badge counts the matches not in
 * `seen`; pick: {owner, choose(again)} or null where the room has no picking (solo rooms).
 */
export function renderResults(room, { order, onOpen, seen, pick }) {
  const matches = room ? [...room.matches.values()] : [];
  const list = clear(byId("matches-list"));
  const sorted = [...matches].sort(SORTS[order] ?? SORTS.likes);
  byId("matches-empty").hidden = sorted.length > 0;
  const picked = room?.pick?.mediaId;
  for (const match of sorted) list.append(filmItem(match, onOpen, { picked: match.media.id === picked }));
  byId("matches-count").textContent = sorted.length ? String(sorted.length) : "";
  const unseen = sorted.filter((match) => !seen.has(match.media.id)).length;
  const badge = byId("tab-matches-badge");
  badge.textContent = unseen ? String(unseen) : "";
  badge.hidden = !unseen;
  renderPick(room, pick, matches.length);
  renderClosest(room, onOpen);
}

function renderPick(room, pick, matchCount) {
  const box = clear(byId("pick"));
  const chosen = room?.pick;
  box.hidden = !pick || (!chosen && !matchCount);
  if (box.hidden) return;
  if (!chosen) {
    box.append(
      h("p", { class: "pick__ask" }, t("PICK_ASK")),
      h(
        "button",
        { type: "button", id: "pick-button", class: "button button--primary button--block", onclick: () => pick.choose(false) },
        icon("dice"),
        h("span", {}, t("PICK_FOR_US")),
      ),
      h("p", { class: "hint" }, t("PICK_HINT")),
    );
    return;
  }
  const media = chosen.media;
  box.append(
    h("p", { class: "pick__label" }, icon("dice", "icon icon--small"), " ", t("PICK_TITLE")),
    h(
      "div",
      { class: "pick__film" },
      poster(media, { className: "pick__poster", widths: [160, 320], sizes: "88px" }),
      h(
        "div",
        { class: "pick__text" },
        h("h3", { id: "pick-title", class: "pick__title" }, media.title),
        h("p", { class: "pick__facts" }, facts(media).join(" · ")),
        media.linkUrl
          ? h("a", { id: "pick-link", class: "button button--primary button--small", href: resolve(media.linkUrl), target: "_blank", rel: "noopener" }, icon("external"), h("span", {}, linkLabel(media)))
          : null,
      ),
    ),
  );
  if (pick.owner && matchCount > 1) {
    box.append(
      h(
        "button",
        { type: "button", id: "pick-again", class: "button button--ghost button--small pick__again", onclick: () => pick.choose(true) },
        icon("dice"),
        h("span", {}, t("PICK_AGAIN")),
      ),
    );
  }
}

function renderClosest(room, onOpen) {
  const solo = !room || room.type === "solo";
  const results = room?.results;
  const calls = results?.deckDone ? results.closestCalls : [];
  byId("closest").hidden = !calls.length;
  const list = clear(byId("closest-list"));
  for (const call of calls) list.append(filmItem(call, onOpen));
  // Before the end of the deck: say that there is more to come.
  byId("closest-later").hidden = solo || Boolean(room.ended || results?.deckDone) || deckDone(room);
}

/** One film of the results: {media, users, matchedAt?}; `picked` marks the room's pick. */
function filmItem({ media, users, matchedAt }, onOpen, { picked = false } = {}) {
  return h(
    "li",
    { class: `match-item${picked ? " match-item--picked" : ""}` },
    h(
      "button",
      { type: "button", class: "match-item__open", onclick: () => onOpen(media), "aria-label": t("SHOW_DETAILS_OF", { title: media.title }) },
      poster(media, { className: "match-item__poster", widths: [160, 320], sizes: "64px" }),
    ),
    h(
      "div",
      { class: "match-item__text" },
      h("h3", { class: "match-item__title" }, media.title),
      picked ? h("p", { class: "badge match-item__pick" }, icon("dice", "icon icon--small"), t("PICK_TITLE")) : null,
      h("p", { class: "match-item__facts" }, facts(media).join(" · ")),
      h(
        "p",
        { class: "match-item__likers" },
        h("span", { class: "likes", "aria-hidden": "true" }, icon("heart", "icon icon--small icon--like"), String(users.length)),
        " ",
        t("MATCH_LIKED_BY", { users: formatList(users), count: users.length }),
      ),
      // A match (it has matchedAt): when, and what can be done with it; a closest call is neither.
      ...(matchedAt
        ? [
            h("p", { class: "match-item__when" }, h("time", { datetime: new Date(matchedAt).toISOString() }, t("MATCHED_WHEN", { when: timeAgo(matchedAt) }))),
            requestControl(media),
            playControl(media),
          ]
        : []),
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
