// The details of a film (a dialog): synopsis, credits, the link to the media server, and rating.

import { byId, clear, h } from "./dom.js";
import { facts, linkLabel } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { poster } from "./poster.js";
import { saveToggle } from "./watchlist.js";

const dialog = byId("details");

/** onRate(rating) is given when the film is the top card; then Like/Dislike buttons are shown. */
export function showDetails(media, { onRate } = {}) {
  const body = clear(byId("details-body"));
  const credits = [];
  if (media.directors?.length) credits.push(h("dt", {}, t("DIRECTED_BY")), h("dd", {}, formatList(media.directors)));
  if (media.actors?.length) credits.push(h("dt", {}, t("CAST")), h("dd", {}, formatList(media.actors.slice(0, 8))));
  const rate = (rating) => () => {
    dialog.close();
    onRate(rating);
  };
  body.append(
    poster(media, { className: "details__poster", widths: [300, 600], sizes: "(min-width: 700px) 220px, 40vw" }),
    h(
      "div",
      { class: "details__text" },
      h("h2", { id: "details-title", class: "details__title" }, media.title),
      media.tagline ? h("p", { class: "details__tagline" }, media.tagline) : null,
      h(
        "p",
        { class: "details__facts" },
        facts(media).join(" · "),
        media.contentRating ? [" ", h("span", { class: "badge badge--rating" }, media.contentRating)] : null,
        media.inLibrary === false ? [" ", h("span", { class: "badge badge--missing" }, t("NOT_IN_LIBRARY"))] : null,
      ),
      media.genres?.length
        ? h(
            "ul",
            { class: "chips", "aria-label": t("GENRES") },
            media.genres.map((genre) => h("li", { class: "chip" }, genre)),
          )
        : null,
      media.description ? h("p", { class: "details__synopsis" }, media.description) : null,
      credits.length ? h("dl", { class: "details__credits" }, credits) : null,
      media.linkUrl
        ? h(
            "a",
            { class: "button button--secondary", href: resolve(media.linkUrl), target: "_blank", rel: "noopener" },
            linkLabel(media),
          )
        : null,
      saveToggle(media),
    ),
    onRate
      ? h(
          "div",
          { class: "details__rate" },
          h("button", { type: "button", class: "button button--nope", onclick: rate("dislike") }, t("DISLIKE")),
          h("button", { type: "button", class: "button button--like", onclick: rate("like") }, t("LIKE")),
        )
      : null,
  );
  dialog.showModal();
  byId("details-close").focus();
}

