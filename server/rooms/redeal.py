"""A stored room dealt a new deck (a standing room following its definition or its library, a room
leaving out what its people watched): what follows from the deck for progress and matches.

Every rating is kept, so a film that comes back brings its ratings back; progress counts the ratings
of films in the deck. A match of a film still in the deck stands, unless the rules changed: then, as
for films new to the deck, it is a match when the rules say so now (at the time it first was, or
now).
"""

from __future__ import annotations

from storage import SerializedRoom

from .rules import is_group_match, likers


def redealt(before: SerializedRoom, made: SerializedRoom, ids: list[str], now_ms: int) -> SerializedRoom | None:
    """``made`` (a copy of ``before``, perhaps with new settings) dealt the deck ``ids``: its
    progress and matches follow; None when it is ``before`` as it was."""
    # The stored list is kept when equal: never changed in place, it is shared by the room's copies.
    made.media_ids = before.media_ids if ids == before.media_ids else ids
    deck = set(ids)
    progress = dict.fromkeys(before.user_progress, 0)
    for media_id, ratings in made.ratings.items():
        if media_id in deck:
            for user, _, _ in ratings:
                progress[user] = progress.get(user, 0) + 1
    made.user_progress = progress
    made.matches = _matches(before, made, deck, now_ms)
    return None if made == before else made


def _matches(before: SerializedRoom, room: SerializedRoom, deck: set[str], now_ms: int) -> dict[str, int]:
    if room.room_type == "solo":
        return {}  # a solo room's matches are each member's likes
    rules_changed = (room.room_type, room.match_threshold) != (before.room_type, before.match_threshold)
    dealt = set(before.media_ids or [])

    def judged_again(media_id: str) -> bool:
        return rules_changed or media_id not in dealt

    members = list(room.members)
    matches = {
        media_id: at for media_id, at in before.matches.items() if media_id in deck and not judged_again(media_id)
    }
    for media_id, ratings in room.ratings.items():
        judged = media_id in deck and judged_again(media_id)
        if judged and is_group_match(room.room_type, room.match_threshold, likers(ratings), members):
            matches[media_id] = before.matches.get(media_id, now_ms)
    return matches
