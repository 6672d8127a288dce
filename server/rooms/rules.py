"""The rules of a room (protocol.md), as pure functions of its stored state.

Rooms shared through Redis decide with the Lua twins of these functions, in ``rules.lua`` beside
this file: each function here has one there of the same name and meaning, and
``tests/test_room_rules.py`` runs both on the same random histories and compares what they decide.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence

from server.identity import plex_identity
from server.names import skeleton
from storage import Rating, SerializedRoom

# Room types that match like "standard". "async" is the storage fork's name for a room that persists
# across sessions, which every room here does; it is kept and echoed as the client sent it.
STANDARD_TYPES = frozenset({"standard", "async"})


# The owner of a room created by someone without an identity (a v2 client): whoever holds that
# name's seat, as in v2.
NAME_OWNER = "name:"


class Refusal(enum.Enum):
    """Why a change was not made (the values are what the Lua scripts return)."""

    NO_ROOM = -1
    ROOM_FULL = -2
    NAME_TAKEN = -3
    ROOM_ENDED = -4
    REMOVED = -5
    NOT_OWNER = -6
    NO_SUCH_MEMBER = -7
    # Rating an item twice, undoing a rating that is not there, leaving a seat not held.
    NOTHING_TO_DO = 0


class Seating(enum.Enum):
    """How a join takes a member's seat."""

    # Another device or tab of the member's own identity: seated beside the others.
    BESIDE = 1
    # A name-only seat (v2) taken over: the seat's other connections are dropped.
    INSTEAD = 2
    # The seat passes to the joining identity (offered by the owner, or a name-only seat its own
    # member token proves): its other connections are dropped.
    CLAIMED = 3


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


def ban_key(identity: str | None, skeleton: str) -> str:
    """What a removal bars from the room: the identity, else the name (and every look-alike)."""
    return identity or NAME_OWNER + skeleton


def owner_of(room: SerializedRoom) -> str:
    """The room's owner; rooms stored before owners were: their creator's Plex account, else
    whoever holds the creator's name's seat (as in v2, until its own member token claims it)."""
    if room.owner:
        return room.owner
    if room.creator_plex_user_id:
        return plex_identity(room.creator_plex_user_id)
    return NAME_OWNER + skeleton(room.creator_plex_username) if room.creator_plex_username else ""


def is_owner(owner: str, identity: str | None, skeleton: str, *, seated: bool) -> bool:
    """Whether someone acts as the room's owner: the owner's identity; for a room whose creator had
    none, whoever holds the creator's name's seat."""
    if not owner:
        return False
    if identity is not None and owner == identity:
        return True
    return seated and owner == NAME_OWNER + skeleton


def counts_as_present(online: bool, seen_at: int, now: int, absence_ms: int) -> bool:
    """Whether a member takes up a place in the room: connected, or seen within ``absence_ms``."""
    return online or now - seen_at < absence_ms


def seating(
    member_identity: str | None, identity: str | None, *, token_matches: bool, elsewhere: bool, offered: bool
) -> Seating | None:
    """How a join may take an existing member's seat, or None (someone else's seat).

    A seat held by an identity passes only to that identity (from any number of devices), or to
    the device the owner offered it to. A name-only seat (v2) goes to a name-only login as in v2
    (its member token is needed while it is connected elsewhere), and to an identity only with its
    member token: an identity can never take a name-only seat from someone who lacks one, nor
    anyone a seat held by an identity.
    """
    if offered:
        return Seating.CLAIMED
    if member_identity is not None:
        return Seating.BESIDE if identity == member_identity else None
    if identity is not None:
        return Seating.CLAIMED if token_matches else None
    return Seating.INSTEAD if token_matches or not elsewhere else None


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
