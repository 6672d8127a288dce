// Whether to animate: the user's "reduce motion" setting wins.

const query = matchMedia("(prefers-reduced-motion: reduce)");
export const reducedMotion = () => query.matches;

/** A short vibration (a match), unless motion is reduced; browsers allow it only after a tap. */
export function buzz(pattern) {
  if (reducedMotion() || typeof navigator.vibrate !== "function") return;
  if (navigator.userActivation && !navigator.userActivation.hasBeenActive) return;
  navigator.vibrate(pattern);
}

/** Resolve after the element's transition ends (or at once without motion, or after `timeout`). */
export function afterTransition(el, timeout = 500) {
  if (reducedMotion()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      el.removeEventListener("transitionend", onEnd);
      resolve();
    };
    const onEnd = (event) => {
      if (event.target === el) done();
    };
    const timer = setTimeout(done, timeout);
    el.addEventListener("transitionend", onEnd);
  });
}
