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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Presence(_Frozen):
    """A connected member: who they are to the others, and their connections (seat id -> process)."""

    user: User
    seats: dict[str, str]


class _Event(_Frozen):
    # 0 for events decided in this process (not numbered).
    seq: int = 0


class Joined(_Event):
    t: Literal["join"] = "join"
    name: str
    member: Member
    seat: str
    process: str = ""
    user: User
    # The name's seat was connected already (another tab, or a reconnect): the others are not told.
    resumed: bool
    # The name's other connections are dropped (a name-only seat taken over, a seat handed over).
    replaces: bool = False
    progress: int
    # Set when this join makes its identity the room's owner (a creator's seat claimed).
    owner: str | None = None


class Left(_Event):
    t: Literal["leave"] = "leave"
    name: str
    seat: str
    # leaveRoom: the member leaves the room, from all its connections; else one connection closed.
    permanent: bool
    # Unanimous matches the departure completed, all matched at ``at``.
    matched: list[str] = []
    at: int = 0


class Removed(_Event):
    """The owner removed a member, who may not come back (``ban``) unless readmitted."""

    t: Literal["remove"] = "remove"
    name: str
    ban: str
    matched: list[str] = []
    at: int = 0


class Readmitted(_Event):
    t: Literal["readmit"] = "readmit"
    ban: str


class OwnerChanged(_Event):
    t: Literal["owner"] = "owner"
    owner: str


class SeatOffered(_Event):
    """The owner offered a member's seat to a new device (the code itself is never published)."""

    t: Literal["offer"] = "offer"
    name: str
    offer_hash: str
    until: int


class Picked(_Event):
    """The server picked one of the room's matches for it ("pick one for us")."""

    t: Literal["pick"] = "pick"
    mediaId: str
    at: int


class Rated(_Event):
    t: Literal["rate"] = "rate"
    name: str
    mediaId: str
    rating: RatingValue
    at: int
    progress: int
    # Set when the item is (now or already) a group match: the match is announced (again).
    matchedAt: int | None = None


class Undone(_Event):
    t: Literal["undo"] = "undo"
    name: str
    mediaId: str
    progress: int
    matchRemoved: bool


class Deleted(_Event):
    t: Literal["delete"] = "delete"


class Redealt(_Event):
    """The room's deck and settings were replaced (a standing room following its definition or its
    library): too big for an event, so every process reads the room again."""

    t: Literal["deck"] = "deck"


class Notice(_Frozen):
    """News about a match that changes nothing stored (a player started it), passed to every
    process serving the room as it is: not numbered, never part of a room's state."""

    t: Literal["notice"] = "notice"
    media_id: str = Field(alias="mediaId")
    reply: str
    payload: dict[str, object]


NOTICE_PREFIX = '{"t":"notice"'

Event = Annotated[
    Joined | Left | Removed | Readmitted | OwnerChanged | SeatOffered | Picked | Rated | Undone | Deleted | Redealt,
    Field(discriminator="t"),
]
EVENTS: TypeAdapter[Event] = TypeAdapter(Event)

_SEQ_PREFIX = '{"seq":'


def numbered(data: str) -> int | None:
    """The ``seq`` of a published event, read without parsing it (both the scripts and the Python
    decisions write it first); None when ``data`` does not start that way.

    A process reads its own room changes twice, from the script's answer and from the channel:
    the second copy is dropped by its number alone.
    """
    if not data.startswith(_SEQ_PREFIX):
        return None
    end = data.find(",", len(_SEQ_PREFIX))
    digits = data[len(_SEQ_PREFIX) : end]
    return int(digits) if end > 0 and digits.isascii() and digits.isdigit() else None
