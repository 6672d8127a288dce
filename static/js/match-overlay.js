// "It's a match!": the moment a film matches, with its poster (animated unless motion is reduced).

import { byId, clear } from "./dom.js";
import { linkLabel } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { playControl } from "./players.js";
import { poster } from "./poster.js";
import { requestControl } from "./requests.js";

const dialog = byId("match-dialog");
let shown = null;

export function likersText(match) {
  return t("MATCHES_SECTION_CARD_LIKERS", { users: formatList(match.users), movie: match.media.title });
}

export function showMatch(match) {
  shown = match.media.id;
  const media = match.media;
  clear(byId("match-poster")).append(
    poster(media, { className: "match__poster", widths: [400, 800], sizes: "(min-width: 700px) 280px, 60vw", eager: true }),
  );
  byId("match-text").textContent = likersText(match);
  clear(byId("match-extras")).append(...[requestControl(media), playControl(media)].filter(Boolean));
  const link = byId("match-link");
  link.hidden = !media.linkUrl;
  if (media.linkUrl) {
    link.href = resolve(media.linkUrl);
    link.textContent = linkLabel(media);
  }
  if (!dialog.open) dialog.showModal();
  dialog.classList.remove("match--pop");
  dialog.getBoundingClientRect();
  dialog.classList.add("match--pop");
  byId("match-close").focus();
}

/** Close the overlay if it shows a match that no longer holds. */
export function hideMatch(mediaId) {
  if (dialog.open && shown === mediaId) dialog.close();
}

export const matchOpen = () => dialog.open;

export function initMatchOverlay({ seeAll }) {
  byId("match-close").addEventListener("click", () => dialog.close());
  byId("match-see").addEventListener("click", () => {
    dialog.close();
    seeAll();
  });
  dialog.addEventListener("close", () => {
    shown = null;
  });
}
