// Keyboard shortcuts of the room: ← dislike, → like, Backspace or Ctrl/⌘+Z undo, B save for later.

const EDITABLE = "input, textarea, select, [contenteditable=''], [contenteditable='true']";

/** active(): whether the deck is on screen and no dialog is open. */
export function initKeys({ active, like, dislike, undo, save }) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || !active()) return;
    if (event.target instanceof Element && event.target.closest(EDITABLE)) return;
    const command = event.ctrlKey || event.metaKey;
    let action = null;
    if (!command && !event.shiftKey && event.key === "ArrowLeft") action = dislike;
    else if (!command && !event.shiftKey && event.key === "ArrowRight") action = like;
    else if (!command && event.key.toLowerCase() === "b") action = save;
    else if ((!command && event.key === "Backspace") || (command && !event.shiftKey && event.key.toLowerCase() === "z")) {
      action = undo;
    }
    if (!action) return;
    event.preventDefault();
    // A held key rates one card, not thirty a second (ratings beyond the rate limit would be lost).
    if (!event.repeat) action();
  });
}
