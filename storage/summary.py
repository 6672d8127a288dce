"""What the host's tools show of a room without loading it whole, and what they report of a room
that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from .room import SerializedRoom


class RoomSummary(BaseModel):
    """One line of ``moviematch rooms list``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    name: str
    created_at: datetime
    opened_at: datetime
    members: int
    # The ratings made: the members' progress summed (the rating operations keep each member's
    # progress equal to their ratings), so no backend has to count rating by rating.
    ratings: int
    matches: int
    # Films in the room's deck; None while its order is not fixed (a room of the original MovieMatch
    # that has not been opened here yet).
    films: int | None
    # Bytes the room takes in storage: its files on disk, its keys in Redis memory, its JSON form in memory.
    size: int
    join_code: str | None = None


def summarise(room: SerializedRoom, size: int) -> RoomSummary:
    return RoomSummary(
        name=room.room_name,
        created_at=room.created_at,
        opened_at=room.opened_at,
        members=len(room.members),
        ratings=sum(room.user_progress.values()),
        matches=len(room.matches),
        films=None if room.media_ids is None else len(room.media_ids),
        size=size,
        join_code=room.join_code,
    )


@dataclass(frozen=True)
class Unreadable:
    """A stored room that cannot be read: where it is (a file, a Redis key) and why."""

    location: str
    reason: str
    # The room's display name, when storage knows it without reading the room.
    room_name: str | None = None
