// One movie card of the stack: poster, title, facts and genres, with LIKE/NOPE stamps for dragging.

import { h } from "./dom.js";
import { facts } from "./format.js";
import { t } from "./i18n.js";
import { poster } from "./poster.js";

const CARD_SIZES = "(min-width: 700px) 420px, 92vw";

export function buildCard(media, { eager }) {
  const badges = [
    media.contentRating ? h("span", { class: "badge badge--rating" }, media.contentRating) : null,
    // (ext) A title the library lacks (docs/protocol.md, "Requests").
    media.inLibrary === false ? h("span", { class: "badge badge--missing" }, t("NOT_IN_LIBRARY")) : null,
  ].filter(Boolean);
  return h(
    "article",
    { class: "card", dataset: { id: media.id }, "aria-label": media.title },
    poster(media, { className: "card__poster", sizes: CARD_SIZES, eager }),
    h("div", { class: "card__stamp card__stamp--like", "aria-hidden": "true" }, t("STAMP_LIKE")),
    h("div", { class: "card__stamp card__stamp--nope", "aria-hidden": "true" }, t("STAMP_NOPE")),
    h(
      "div",
      { class: "card__info" },
      h("h3", { class: "card__title" }, media.title),
      h("p", { class: "card__facts" }, facts(media).join(" · "), badges.map((badge) => [" ", badge])),
      media.genres?.length
        ? h(
            "ul",
            { class: "chips", "aria-label": t("GENRES") },
            media.genres.slice(0, 3).map((genre) => h("li", { class: "chip" }, genre)),
          )
        : null,
    ),
  );
}
