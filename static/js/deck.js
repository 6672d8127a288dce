// The card stack: shows the next few cards, follows a dragging finger or mouse, throws cards
// out when rated (drag, flick, button or key), and brings one back on undo.

import { buildCard } from "./card.js";
import { attachDrag, isFling } from "./gestures.js";
import { afterTransition, reducedMotion } from "./motion.js";

const VISIBLE = 3;

export class Deck {
  /** actions: {canRate(rating), rate(rating) -> bool, details(media)} */
  constructor(layer, actions) {
    this.layer = layer;
    this.actions = actions;
    this.cards = new Map(); // mediaId -> element, for the cards in the stack (not the ones flying out)
  }

  top() {
    return [...this.cards.values()].find((el) => el.dataset.depth === "0") ?? null;
  }

  render(media, { undone } = {}) {
    const wanted = media.slice(0, VISIBLE);
    const ids = new Set(wanted.map((item) => item.id));
    for (const [id, el] of this.cards) {
      if (!ids.has(id)) {
        el.remove();
        this.cards.delete(id);
      }
    }
    wanted.forEach((item, depth) => {
      let el = this.cards.get(item.id);
      const created = !el;
      if (created) {
        el = buildCard(item, { eager: depth < 2 });
        this.wire(el, item);
        this.cards.set(item.id, el);
        this.layer.prepend(el); // stacking comes from data-depth, not from document order
      }
      el.dataset.depth = String(depth);
      el.inert = depth !== 0;
      el.tabIndex = depth === 0 ? 0 : -1;
      if (created && depth === 0 && undone?.media.id === item.id) this.enter(el, undone.rating);
    });
  }

  wire(el, item) {
    let drag = null;
    attachDrag(el, {
      canStart: () => el.dataset.depth === "0" && this.cards.get(item.id) === el,
      move: (dx, dy) => {
        drag = { dx, dy };
        el.classList.add("card--dragging");
        el.style.transform = `translate(${dx}px, ${dy}px) rotate(${dx * 0.05}deg)`;
        const strength = Math.min(1, Math.abs(dx) / 110).toFixed(2);
        el.style.setProperty("--like", dx > 0 ? strength : "0");
        el.style.setProperty("--nope", dx < 0 ? strength : "0");
      },
      end: (release) => {
        el.classList.remove("card--dragging");
        const rating = release.dx > 0 ? "like" : "dislike";
        if (isFling(release, this.layer.clientWidth) && this.throw(rating, drag?.dy ?? 0)) return;
        drag = null;
        this.settle(el);
      },
      tap: () => this.actions.details(item),
    });
    el.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === " ") && event.target === el) {
        event.preventDefault();
        this.actions.details(item);
      }
    });
  }

  settle(el) {
    el.style.transform = "";
    el.style.setProperty("--like", "0");
    el.style.setProperty("--nope", "0");
  }

  /** Rate the top card and throw it off the stack; false when rating is not possible now. */
  throw(rating, dy = 0) {
    const el = this.top();
    if (!el || !this.actions.canRate(rating)) return false;
    const id = el.dataset.id;
    const hadFocus = el.contains(document.activeElement);
    this.cards.delete(id); // from now on it is not part of the stack, whatever renders next
    el.classList.add("card--leaving");
    delete el.dataset.depth;
    el.inert = true;
    const direction = rating === "like" ? 1 : -1;
    el.style.transform = `translate(${direction * offscreen(el)}px, ${dy}px) rotate(${direction * 28}deg)`;
    el.style.setProperty(direction > 0 ? "--like" : "--nope", "1");
    if (!this.actions.rate(rating)) {
      // Not sent after all: the card stays on top.
      this.cards.set(id, el);
      el.classList.remove("card--leaving");
      el.dataset.depth = "0";
      el.inert = false;
      this.settle(el);
      return false;
    }
    afterTransition(el, 450).then(() => el.remove());
    if (hadFocus) this.top()?.focus({ preventScroll: true });
    return true;
  }

  /** A card coming back (undo) flies in from the side it left. */
  enter(el, rating) {
    if (reducedMotion()) return;
    const direction = rating === "like" ? 1 : -1;
    el.classList.add("card--dragging");
    el.style.transform = `translate(${direction * offscreen(el)}px, 0) rotate(${direction * 28}deg)`;
    el.getBoundingClientRect(); // commit the start position before animating back
    el.classList.remove("card--dragging");
    this.settle(el);
  }
}

/** How far to move a card (centred on the screen, roughly) so that it is out of sight. */
const offscreen = (el) => (window.innerWidth + el.offsetWidth) / 2 + 60;
