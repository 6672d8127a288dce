"""Deciding and applying a change to a room: one interface, two implementations.

``RoomChanges`` is what the registry calls for every change (join, leave, rate, undo, delete) and
for a room's life in memory (opened, released). ``server.rooms.local.LocalChanges`` decides in this
process and saves rooms from memory; ``server.rooms.shared.SharedChanges`` has Redis decide, for
rooms that several processes serve. The app picks one when it is wired (``server.app``).
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.protocol import (
    ErrorName,
    ProtocolError,
    Reply,
    name_taken,
    not_in_room,
    not_rated,
    rating_error,
    room_full,
    room_not_found,
)
from server.user import User
from storage import RatingValue, SerializedRoom

from .events import OnlineSeat
from .room import Room, Seat
from .rules import Refusal


@dataclass(frozen=True)
class Snapshot:
    """A room as read from where it is decided: its state, who is connected, its last event's number."""

    state: SerializedRoom
    online: dict[str, OnlineSeat] = field(default_factory=dict)
    seq: int = 0


# Makes the room of a snapshot (the registry fetches its media and orders them).
Build = Callable[[Snapshot], Awaitable[Room]]


class RoomChanges(ABC):
    """Decides and applies changes to the rooms this process serves."""

    def __init__(self, *, max_members: int, now_ms: Callable[[], int], process_id: str = "") -> None:
        self.max_members = max_members
        self.process_id = process_id
        self._now_ms = now_ms
        self._dropped: Callable[[Room], None] = lambda _: None

    def bind(self, dropped: Callable[[Room], None]) -> None:
        """``dropped(room)`` is called when a room is deleted, here or by another process."""
        self._dropped = dropped

    # -- rooms in memory ------------------------------------------------------------------------

    @abstractmethod
    async def open(self, room_name: str, build: Build) -> Room | None:
        """Read a stored room and serve it (None when there is none); raises StorageError."""

    @abstractmethod
    async def adopt(self, state: SerializedRoom, build: Build) -> Room | None:
        """Serve a room this process has just stored (None when it was deleted meanwhile)."""

    async def settle(self, room: Room) -> bool:
        """Make a room ready to leave memory; False when it must stay (its changes are not saved)."""
        return True

    @abstractmethod
    async def release(self, room: Room) -> None:
        """Stop serving a room that left memory (nobody here is connected to it)."""

    @abstractmethod
    def changed(self, room: Room) -> None:
        """The room's state changed (the room's ``on_change``)."""

    # -- changes ---------------------------------------------------------------------------------

    @abstractmethod
    async def join(self, room: Room, seat: Seat, user: User, member_token: str | None, reply_type: Reply) -> None:
        """Seat a connection; it is sent ``reply_type`` with the room once seated."""

    @abstractmethod
    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        """A connection closed (the member stays), or the member left for good (``leaveRoom``)."""

    @abstractmethod
    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        """Record a rating of an item of the room; True when it made a new match."""

    @abstractmethod
    async def undo(self, room: Room, user_name: str, media_id: str) -> None: ...

    @abstractmethod
    async def delete(self, room: Room) -> None:
        """Delete the room from storage and tell its members everywhere."""

    # -- the process's life ---------------------------------------------------------------------

    @abstractmethod
    def healthy(self) -> bool:
        """Whether changes can be decided and stored now (reported by ``/health``)."""

    @abstractmethod
    async def run(self) -> None:
        """Background work, until cancelled."""

    @abstractmethod
    async def stop(self, budget: float) -> None:
        """The process stops (its connections have closed): finish within ``budget`` seconds."""

    # -- shared by both implementations ---------------------------------------------------------

    def arriving(self, room: Room, seat: Seat, user: User, reply_type: Reply) -> tuple[OnlineSeat, str]:
        """Where a joining seat will sit, and its new member token (the room expects it now)."""
        token = secrets.token_urlsafe(32)
        room.expect(seat, token, reply_type)
        return OnlineSeat(seat=seat.seat_id, process=self.process_id, user=user.shown()), token


def error_reply_of(reply_type: Reply) -> Reply:
    """The error reply of a request whose success is ``reply_type`` (joinRoomSuccess -> joinRoomError)."""
    return Reply(reply_type.replace("Success", "Error"))


def join_refused(refusal: Refusal, reply_type: Reply, user_name: str, room: Room, max_members: int) -> ProtocolError:
    if refusal is Refusal.ROOM_FULL:
        return room_full(reply_type, room.name, max_members)
    if refusal is Refusal.NAME_TAKEN:
        return name_taken(reply_type, user_name, room.name)
    return room_not_found(reply_type, room.name)


def rating_refused(refusal: Refusal, user_name: str, media_id: str, *, undoing: bool = False) -> ProtocolError:
    if refusal is Refusal.NOTHING_TO_DO:
        if undoing:
            return not_rated(user_name, media_id)
        return rating_error(ErrorName.ALREADY_RATED, f"{user_name} has already rated this item", media_id)
    if refusal is Refusal.ROOM_ENDED:
        return rating_error(ErrorName.ROOM_ENDED, "this room has its match", media_id)
    return not_in_room(media_id, "this room no longer exists")
