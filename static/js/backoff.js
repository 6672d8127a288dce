// Reconnect delays: exponential, capped, with "equal jitter" (half fixed, half random) so a
// restarted server is not hit by every browser in the same millisecond. The growth is gentle, so
// a server that restarts in a few seconds is found again within a second or two of coming back.

const BASE_DELAY_MS = 250;
const GROWTH = 1.6;
const MAX_DELAY_MS = 10_000;

/** The wait before reconnect attempt `attempt` (0 = first retry). */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * GROWTH ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
