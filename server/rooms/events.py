"""What happened in a room, as every process serving it applies it.

Decided in this process (``server.rooms.decisions``) or, for rooms shared through Redis, by the
scripts of ``server.rooms.shared.scripts``, which publish them numbered by ``seq``. Field names are
the JSON keys of the events the scripts publish.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from server.user import User
from storage import Member, RatingValue


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)
    # 0 for events decided in this process (not numbered).
    seq: int = 0
    name: str


class OnlineSeat(BaseModel):
    """Where a connected member sits: one connection (``seat``) of one process, and the public user."""

    model_config = ConfigDict(frozen=True)
    seat: str
    process: str = ""
    user: User


class Joined(_Event):
    t: Literal["join"] = "join"
    member: Member
    online: OnlineSeat
    # The name was connected already (a reconnect): the others are not told it joined.
    resumed: bool
    progress: int


class Left(_Event):
    t: Literal["leave"] = "leave"
    seat: str
    # leaveRoom (the member leaves the room), not a disconnect.
    permanent: bool
    # Unanimous matches the departure completed, all matched at ``matchedAt``.
    matched: list[str] = []
    matchedAt: int = 0


class Rated(_Event):
    t: Literal["rate"] = "rate"
    mediaId: str
    rating: RatingValue
    at: int
    progress: int
    # Set when the item is (now or already) a group match: the match is announced (again).
    matchedAt: int | None = None


class Undone(_Event):
    t: Literal["undo"] = "undo"
    mediaId: str
    progress: int
    matchRemoved: bool


class Deleted(BaseModel):
    model_config = ConfigDict(frozen=True)
    t: Literal["delete"] = "delete"
    seq: int = 0


Event = Annotated[Joined | Left | Rated | Undone | Deleted, Field(discriminator="t")]
EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
