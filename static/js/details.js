// The details of a film or show (a dialog): synopsis, credits, its trailer, the links to the media
// servers that have it, and rating.

import { byId, clear, h } from "./dom.js";
import { facts, linkLabel } from "./format.js";
import { formatList, t } from "./i18n.js";
import { resolve } from "./links.js";
import { poster } from "./poster.js";
import { saveToggle } from "./watchlist.js";

const dialog = byId("details");
// A trailer stops with the dialog (and its download with it).
dialog.addEventListener("close", () => {
  for (const video of dialog.querySelectorAll("video")) {
    video.pause();
    video.removeAttribute("src");
    video.load();
  }
});

/** Play the trailer in place of the poster: streamed by this server, which the page's CSP allows. */
function playTrailer(media, button) {
  const video = h("video", {
    class: "details__trailer",
    src: resolve(media.trailerUrl),
    controls: true,
    autoplay: true,
    playsinline: true,
    preload: "metadata",
    "aria-label": t("TRAILER_OF", { title: media.title }),
  });
  byId("details-body").prepend(video);
  button.remove();
  video.focus();
}

/** The facts line: a show's years run from its first to its last. */
function factsOf(media) {
  const parts = facts(media);
  if (media.type === "show" && media.year && media.endYear && media.endYear !== media.year) {
    parts[0] = `${media.year}–${media.endYear}`;
  }
  return parts;
}

/** One link per media server that has the film (openIn), else the one it came from. */
function serverLinks(media) {
  const servers = media.openIn?.length ? media.openIn : media.linkUrl ? [{ linkUrl: media.linkUrl }] : [];
  return servers.map((server) =>
    h(
      "a",
      { class: "button button--secondary", href: resolve(server.linkUrl), target: "_blank", rel: "noopener" },
      server.title && servers.length > 1 ? `${linkLabel(server)} · ${server.title}` : linkLabel(server),
    ),
  );
}

/** onRate(rating) is given when the film is the top card; then Like/Dislike buttons are shown. */
export function showDetails(media, { onRate } = {}) {
  const body = clear(byId("details-body"));
  const credits = [];
  if (media.directors?.length) credits.push(h("dt", {}, t("DIRECTED_BY")), h("dd", {}, formatList(media.directors)));
  if (media.actors?.length) credits.push(h("dt", {}, t("CAST")), h("dd", {}, formatList(media.actors.slice(0, 8))));
  if (media.seasons) credits.push(h("dt", {}, t("SEASONS")), h("dd", {}, String(media.seasons)));
  if (media.episodes) credits.push(h("dt", {}, t("EPISODES")), h("dd", {}, String(media.episodes)));
  if (media.network) credits.push(h("dt", {}, t("NETWORK")), h("dd", {}, media.network));
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
        factsOf(media).join(" · "),
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
      h(
        "div",
        { class: "details__links" },
        media.trailerUrl
          ? h(
              "button",
              { type: "button", class: "button button--primary", onclick: (event) => playTrailer(media, event.currentTarget) },
              t("PLAY_TRAILER"),
            )
          : null,
        // A trailer on another site opens there: the page plays media from this server only.
        !media.trailerUrl && media.trailerLink
          ? h(
              "a",
              { class: "button button--secondary", href: media.trailerLink, target: "_blank", rel: "noopener noreferrer" },
              t("WATCH_TRAILER"),
            )
          : null,
        serverLinks(media),
      ),
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

