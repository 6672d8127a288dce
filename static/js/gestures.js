// Drag and flick recognition with Pointer Events: one code path for touch, mouse and pen.

const SLOP_PX = 6; // movement before a press becomes a drag (below it: a tap)
const VELOCITY_WINDOW_MS = 100;

/**
 * handlers.canStart(): whether a drag may begin now.
 * handlers.move(dx, dy): while dragging.
 * handlers.end({dx, dy, vx, cancelled}): released (vx in px/ms).
 * handlers.tap(): pressed and released without moving.
 */
export function attachDrag(el, handlers) {
  let press = null;

  el.addEventListener("pointerdown", (event) => {
    if (press || !event.isPrimary || (event.pointerType === "mouse" && event.button !== 0)) return;
    if (!handlers.canStart()) return;
    press = { id: event.pointerId, x: event.clientX, y: event.clientY, dragging: false, samples: [] };
    sample(event);
    el.setPointerCapture?.(event.pointerId);
  });

  el.addEventListener("pointermove", (event) => {
    if (!press || event.pointerId !== press.id) return;
    const dx = event.clientX - press.x;
    const dy = event.clientY - press.y;
    if (!press.dragging && Math.hypot(dx, dy) < SLOP_PX) return;
    press.dragging = true;
    sample(event);
    handlers.move(dx, dy);
    event.preventDefault();
  });

  el.addEventListener("pointerup", (event) => {
    if (!press || event.pointerId !== press.id) return;
    const ended = press;
    press = null;
    if (!ended.dragging) {
      handlers.tap();
      return;
    }
    sample(event, ended);
    handlers.end({ dx: event.clientX - ended.x, dy: event.clientY - ended.y, vx: velocity(ended), cancelled: false });
  });

  const cancel = (event) => {
    if (!press || event.pointerId !== press.id) return;
    const ended = press;
    press = null;
    if (ended.dragging) handlers.end({ dx: 0, dy: 0, vx: 0, cancelled: true });
  };
  el.addEventListener("pointercancel", cancel);
  el.addEventListener("lostpointercapture", cancel);

  function sample(event, target = press) {
    const now = event.timeStamp;
    target.samples.push({ x: event.clientX, t: now });
    while (target.samples.length > 2 && now - target.samples[0].t > VELOCITY_WINDOW_MS) target.samples.shift();
  }
}

function velocity({ samples }) {
  if (samples.length < 2) return 0;
  const first = samples[0];
  const last = samples.at(-1);
  const elapsed = last.t - first.t;
  return elapsed > 0 ? (last.x - first.x) / elapsed : 0;
}

/** Whether a release should throw the card: far enough, or flicked fast enough in the same direction. */
export function isFling({ dx, vx, cancelled }, width) {
  if (cancelled) return false;
  const distance = Math.abs(dx);
  if (distance > Math.min(width * 0.3, 140)) return true;
  return distance > 30 && Math.abs(vx) > 0.5 && Math.sign(vx) === Math.sign(dx);
}
