// Short messages at the bottom of the screen, read out politely by screen readers.

import { byId, h } from "./dom.js";
import { t } from "./i18n.js";

const region = byId("toasts");
const DURATION_MS = 3500;

export function toast({ key, values, kind = "info" }) {
  const item = h("div", { class: `toast toast--${kind}` }, t(key, values));
  region.append(item);
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(() => {
    item.classList.add("toast--leaving");
    setTimeout(() => item.remove(), 300);
  }, DURATION_MS);
}
