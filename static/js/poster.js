// Poster images: responsive, with alt text, and a typographic stand-in when there is no artwork.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { posterUrl } from "./links.js";

/** widths: the candidate widths for srcset; sizes: the CSS sizes attribute. */
export function poster(media, { className, widths = [400, 800], sizes = "100vw", eager = false } = {}) {
  const alt = t("POSTER_ALT", { title: media.title });
  if (!media.posterUrl) return fallback(media, className, alt);
  const img = h("img", {
    class: className,
    src: posterUrl(media.posterUrl, widths[0]),
    srcset: widths.map((width) => `${posterUrl(media.posterUrl, width)} ${width}w`).join(", "),
    sizes,
    alt,
    draggable: "false",
    decoding: "async",
    loading: eager ? "eager" : "lazy",
  });
  img.addEventListener("error", () => img.replaceWith(fallback(media, className, alt)), { once: true });
  return img;
}

function fallback(media, className, alt) {
  return h(
    "div",
    { class: `${className ?? ""} poster-fallback`, role: "img", "aria-label": alt },
    h("span", { "aria-hidden": "true" }, media.title),
  );
}
