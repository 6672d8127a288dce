"""The rules of a room (protocol.md), as pure functions of its stored state.

Rooms shared through Redis decide with the Lua twins of these functions, in ``rules.lua`` beside
this file: each function here has one there of the same name and meaning, and
``tests/test_room_rules.py`` runs both on the same random histories and compares what they decide.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence

from storage import Member, Rating, SerializedRoom

# Room types that match like "standard". "async" is the storage fork's name for a room that persists
# across sessions, which every room here does; it is kept and echoed as the client sent it.
STANDARD_TYPES = frozenset({"standard", "async"})


class Refusal(enum.Enum):
    """Why a change was not made (the values are what the Lua scripts return)."""

    NO_ROOM = -1
    ROOM_FULL = -2
    NAME_TAKEN = -3
    ROOM_ENDED = -4
    # Rating an item twice, or undoing a rating that is not there.
    NOTHING_TO_DO = 0


def likers(ratings: Sequence[Rating]) -> list[str]:
    """Users who liked an item, in the order they liked it."""
    return [user for user, value, _ in ratings if value == "like"]


def is_group_match(room_type: str, threshold: int, liked_by: Collection[str], members: Collection[str]) -> bool:
    """Whether an item is a match for the whole room (solo rooms have per-user matches only).

    ``unanimous`` needs at least two members: one person alone in a room is not a group agreeing.
    """
    if room_type in STANDARD_TYPES:
        return len(liked_by) >= threshold
    if room_type == "unanimous":
        return len(members) >= 2 and all(member in liked_by for member in members)
    return False


def has_ended(room: SerializedRoom, user_name: str) -> bool:
    """EndOnFirstMatch: the room has its match (in a solo room: this user has liked something)."""
    if "EndOnFirstMatch" not in room.options:
        return False
    if room.room_type == "solo":
        return any(
            user == user_name and value == "like" for ratings in room.ratings.values() for user, value, _ in ratings
        )
    return bool(room.matches)


def may_join(
    members: Collection[str], member: Member | None, max_members: int, *, holder_elsewhere: bool, token_matches: bool
) -> Refusal | None:
    """Whether a name may take its seat: there is room for a new member, and a name connected
    elsewhere is taken over only by the same person (who presents the member's token)."""
    if member is None and len(members) >= max_members:
        return Refusal.ROOM_FULL
    if holder_elsewhere and not (member is not None and token_matches):
        return Refusal.NAME_TAKEN
    return None


def completed_by_leave(room: SerializedRoom, staying: Iterable[str]) -> list[str]:
    """The unanimous matches a member leaving for good completes: what everyone staying has liked."""
    if room.room_type != "unanimous":
        return []
    members = list(staying)
    return sorted(
        media_id
        for media_id, ratings in room.ratings.items()
        if media_id not in room.matches and is_group_match(room.room_type, 0, likers(ratings), members)
    )
