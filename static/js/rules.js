// A room's rules in words: what makes a match and who is here to make it ("2 likes needed · 3 here"),
// and what is left before rating ends (matches to go, time, likes), for the room's header; and why
// it ended.

import { duration } from "./format.js";
import { t } from "./i18n.js";

const rulesOf = (room) => room.rules ?? { roomType: room.type, matchThreshold: 2 };

/** Likes a film needs from the people here: the threshold, or (everyone must like it) two at least. */
function needed(rules) {
  if (rules.roomType === "solo") return 1;
  return rules.roomType === "unanimous" ? 2 : rules.matchThreshold;
}

/** The rule's parts, in order: [{text, warning}]; a warning part says the rule cannot be met now. */
export function ruleParts(room) {
  const rules = rulesOf(room);
  const parts = [];
  const part = (text, warning = false) => parts.push({ text, warning });
  if (room.ended) part(t("RULE_ENDED"));
  if (rules.roomType === "solo") part(t("RULE_SOLO"));
  else {
    part(rules.roomType === "unanimous" ? t("RULE_EVERYONE") : t("RULE_THRESHOLD", { count: rules.matchThreshold }));
    const here = room.users.size;
    part(t("RULE_HERE", { count: here }), here < needed(rules));
  }
  return parts;
}

/** What is left before rating ends, short (an icon and a value) for a phone's header, with the
 * words for screen readers: [{icon, value, text, warning}]. Nothing once it has ended. */
export function limitParts(room, now = Date.now()) {
  const rules = rulesOf(room);
  const parts = [];
  if (room.ended) return parts;
  if (rules.matchLimit) {
    const count = Math.max(0, rules.matchLimit - room.matches.size);
    parts.push({ icon: "flag", value: String(count), text: t("RULE_MATCHES_LEFT", { count }) });
  }
  if (rules.endsAt) {
    const ms = rules.endsAt - now;
    const soon = ms < 60_000;
    const time = soon ? t("RUNTIME_MINUTES", { minutes: "<1" }) : duration(Math.ceil(ms / 60_000) * 60_000);
    parts.push({ icon: "clock", value: time, text: soon ? t("RULE_UNDER_A_MINUTE") : t("RULE_TIME_LEFT", { time }), warning: soon });
  }
  if (room.likesLeft !== null) {
    const count = room.likesLeft;
    parts.push({ icon: "heart", value: String(count), text: t("RULE_LIKES_LEFT", { count }), warning: count === 0 });
  }
  return parts;
}

/** Whether the header must be redrawn as time passes (a time limit still running). */
export const ticking = (room) => Boolean(room && !room.ended && rulesOf(room).endsAt);

/** Why rating is over, for the deck's place. */
export function endedText(room) {
  if (room.ended === "time") return t("ROOM_ENDED_TIME");
  const limit = rulesOf(room).matchLimit ?? 1;
  return limit > 1 ? t("ROOM_ENDED_MATCHES", { count: limit }) : t("ROOM_ENDED");
}
