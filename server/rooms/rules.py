"""Match rules of protocol.md, as pure functions of a room's ratings and members."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from storage import Rating


def likers(ratings: Sequence[Rating]) -> list[str]:
    """Users who liked an item, in the order they liked it."""
    return [user for user, value, _ in ratings if value == "like"]


def is_group_match(room_type: str, threshold: int, liked_by: Collection[str], members: Collection[str]) -> bool:
    """Whether an item is a match for the whole room (solo rooms have per-user matches only).

    ``unanimous`` needs at least two members: one person alone in a room is not a group agreeing.
    """
    if room_type == "standard":
        return len(liked_by) >= threshold
    if room_type == "unanimous":
        return len(members) >= 2 and all(member in liked_by for member in members)
    return False
