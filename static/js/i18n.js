// UI strings: the server's `translations` message (key -> string), cached for the next visit; the
// connection's state is built in, for before the socket works.

import { BUILT_IN } from "./builtin-strings.js";
import { load, save } from "./storage.js";

const CACHE_KEY = "moviematch.translations";
let strings = {};
let language = document.documentElement.lang || "en";
const listeners = new Set();

/** The cached strings of the last visit, if they were for this browser language. */
export function restore() {
  const cached = load(localStorage, CACHE_KEY);
  if (cached && cached.requested === navigator.language && cached.strings) {
    apply(cached.strings);
    return true;
  }
  return false;
}

export function setTranslations(next) {
  save(localStorage, CACHE_KEY, { requested: navigator.language, strings: next });
  apply(next);
}

function apply(next) {
  strings = next;
  language = next.LANG || language;
  document.documentElement.lang = language;
  translate(document);
  for (const listener of listeners) listener();
}

export const ready = () => Object.keys(strings).length > 0;
export const lang = () => language;
export const onTranslations = (listener) => listeners.add(listener);

/** t("MATCHES_SECTION_CARD_LIKERS", {users: "A and B", movie: "Alien"}) */
export function t(key, values = {}) {
  const text = strings[key] ?? (BUILT_IN[language] ?? BUILT_IN.en)[key] ?? "";
  return text.replace(/\$\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** Fill [data-i18n] text and [data-i18n-label|title|alt|placeholder] attributes under root. */
export function translate(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-alt]")) el.alt = t(el.dataset.i18nAlt);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** "Ann, Bob and Cy" in the UI language. */
export function formatList(items) {
  try {
    return new Intl.ListFormat(language, { style: "long", type: "conjunction" }).format(items);
  } catch {
    if (items.length < 2) return items.join("");
    return `${items.slice(0, -1).join(", ")} ${t("LIST_CONJUNCTION")} ${items.at(-1)}`;
  }
}
