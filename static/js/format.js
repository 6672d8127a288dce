// Numbers, durations, codes and labels in the UI language.

import { lang, t } from "./i18n.js";

/** "1 h 30 min" */
export function duration(durationMs) {
  const total = Math.round((durationMs ?? 0) / 60_000);
  if (total <= 0) return "";
  const hours = Math.floor(total / 60);
  const minutes = total % 60;
  if (!hours) return t("RUNTIME_MINUTES", { minutes });
  if (!minutes) return t("RUNTIME_HOURS", { hours });
  return t("RUNTIME_HOURS_MINUTES", { hours, minutes });
}

export function rating(value) {
  return new Intl.NumberFormat(lang(), { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(value);
}

export const percent = (fraction) => new Intl.NumberFormat(lang(), { style: "percent" }).format(fraction);

/** "5 minutes ago", "yesterday" … */
export function timeAgo(epochMs, now = Date.now()) {
  const seconds = Math.round((epochMs - now) / 1000);
  const format = new Intl.RelativeTimeFormat(lang(), { numeric: "auto" });
  const units = [
    ["day", 86_400],
    ["hour", 3_600],
    ["minute", 60],
  ];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(0, "second");
}

/** Year, runtime, rating and content rating: what fits on one line under a title. */
export function facts(media) {
  const parts = [];
  if (media.year) parts.push(String(media.year));
  const length = duration(media.duration);
  if (length) parts.push(length);
  if (media.rating) parts.push(`★ ${rating(media.rating)}`);
  return parts;
}

/** The media server an item links to, for "Open in Plex" / "Open in Jellyfin". */
export function linkLabel(media) {
  const url = media.linkUrl ?? "";
  const provider = /(?:^|\/)api\/link\/([^/]+)\//.exec(url)?.[1] ?? url;
  if (/plex/i.test(provider)) return t("OPEN_IN_PLEX");
  if (/jellyfin/i.test(provider)) return t("OPEN_IN_JELLYFIN");
  if (/emby/i.test(provider)) return t("OPEN_IN_EMBY");
  return t("OPEN_LINK");
}

/** Two letters for an avatar. */
export function initials(name) {
  const words = name.trim().split(/\s+/u).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words.at(-1)] : [name.trim()];
  return letters
    .map((word) => Array.from(word)[0] ?? "")
    .join("")
    .slice(0, 2)
    .toUpperCase();
}

/** A stable hue per name, so each member keeps a colour. */
export function hue(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** A code people read out to each other (a room's join code, a seat code), written into a pair of
 * elements: `shown` in two groups of three ("K7F M2Q"; hidden from assistive technology), `spoken`
 * (visually hidden) one character at a time, as screen readers should read it. */
export function showCode(shown, spoken, code) {
  shown.textContent = `${code.slice(0, 3)} ${code.slice(3)}`;
  spoken.textContent = spellCode(code);
}

export const spellCode = (code) => [...code].join(" ");
