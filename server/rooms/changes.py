"""Deciding and applying a change to a room: one interface, two implementations.

``RoomChanges`` is what the registry calls for every change (join, leave, rate, undo, the owner's
actions, delete) and for a room's life in memory (opened, released). ``server.rooms.local.LocalChanges``
decides in this process and saves rooms from memory; ``server.rooms.shared.SharedChanges`` has Redis
decide, for rooms that several processes serve. The app picks one when it is wired (``server.app``).
"""

from __future__ import annotations

import enum
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.names import skeleton
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
from server.providers import Media
from server.user import User
from storage import RatingValue, SerializedRoom

from .decisions import Actor, JoinRequest, token_hash
from .deck import Deck, Library
from .events import Presence
from .room import Arrival, Room, Seat
from .rules import Refusal, owner_of

# Seat codes are read aloud and typed on a phone: no look-alike characters (0/O, 1/I/L).
SEAT_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
SEAT_CODE_LENGTH = 6


class MemberAction(enum.StrEnum):
    """What the owner of a room may do to a member."""

    REMOVE = "remove"
    READMIT = "readmit"
    MAKE_OWNER = "makeOwner"
    OFFER_SEAT = "offerSeat"


@dataclass(frozen=True)
class Snapshot:
    """A room as read from where it is decided: its state, who is connected, its last event's number."""

    state: SerializedRoom
    online: dict[str, Presence] = field(default_factory=dict)
    seq: int = 0


# Makes the room of a snapshot (the registry fetches its media and orders them).
Build = Callable[[Snapshot], Awaitable[Room]]
# The listing of a room's library, fetched again (the registry's; a replica whose deck was replaced).
Listing = Callable[[SerializedRoom], Awaitable[list[Media]]]
# The deck of a room's new state on a listing (the registry's, which shares listings among rooms).
DeckOf = Callable[[SerializedRoom, list[Media]], Deck]
# What a room becomes, made from the room as it is then: its new state and the listing its deck
# is drawn from, or None when nothing changes.
Change = Callable[[SerializedRoom], tuple[SerializedRoom, list[Media]] | None]
# A new deck and settings for a stored room (a standing room following its definition and its
# library): given the room as read, fetches what it needs and returns the ``Change``.
Reshape = Callable[[SerializedRoom], Awaitable[Change]]


def normal_seat_code(code: str) -> str:
    return "".join(code.split()).upper()


def new_seat_code() -> str:
    return "".join(secrets.choice(SEAT_CODE_ALPHABET) for _ in range(SEAT_CODE_LENGTH))


class RoomChanges(ABC):
    """Decides and applies changes to the rooms this process serves."""

    def __init__(self, *, max_members: int, absence_ms: int, now_ms: Callable[[], int], process_id: str = "") -> None:
        self.max_members = max_members
        self.absence_ms = absence_ms
        self.process_id = process_id
        self._now_ms = now_ms
        self._dropped: Callable[[Room], None] = lambda _: None
        self._listing: Listing | None = None
        self._deck_of: DeckOf = lambda state, items: Deck(state.media_ids or [], Library(items))

    def now_ms(self) -> int:
        """The clock every decision uses (epoch ms; tests step it)."""
        return self._now_ms()

    def bind(
        self, dropped: Callable[[Room], None], listing: Listing | None = None, deck_of: DeckOf | None = None
    ) -> None:
        """``dropped(room)`` is called when a room is deleted, here or by another process;
        ``listing(state)`` fetches the listing of a room whose deck was replaced, and
        ``deck_of(state, listing)`` makes its deck."""
        self._dropped = dropped
        self._listing = listing
        if deck_of is not None:
            self._deck_of = deck_of

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
    async def join(self, room: Room, request: JoinRequest, arrival: Arrival) -> None:
        """Seat ``arrival``'s connection (see ``join_request``); once seated it is sent the room
        as ``arrival`` says."""

    @abstractmethod
    async def leave(self, room: Room, seat: Seat, *, permanently: bool) -> None:
        """A connection closed (the member stays), or the member left for good (``leaveRoom``)."""

    @abstractmethod
    async def rate(self, room: Room, user_name: str, media_id: str, rating: RatingValue) -> bool:
        """Record a rating of an item of the room; True when it made a new match."""

    @abstractmethod
    async def undo(self, room: Room, user_name: str, media_id: str) -> None: ...

    @abstractmethod
    async def manage(self, room: Room, actor: Actor, action: MemberAction, name: str, code_hash: str) -> None:
        """The owner's action on a member (``code_hash``: the new seat code's, for OFFER_SEAT)."""

    @abstractmethod
    async def pick(self, room: Room, actor: Actor, media_id: str) -> None:
        """Record ``media_id`` (one of the room's matches) as the room's pick."""

    @abstractmethod
    async def delete(self, room: Room, actor: Actor) -> None:
        """Delete the room from storage and tell its members everywhere (its owner only)."""

    @abstractmethod
    async def announce(self, room: Room, media_id: str, reply: Reply, payload: dict[str, Any]) -> None:
        """News about a match that changes nothing stored (a player started it): ``reply`` with
        ``payload`` to the members who see the match, on every process serving the room."""

    @abstractmethod
    async def reshape(self, room_name: str, reshape: Reshape) -> bool:
        """Replace a stored room's deck and settings by what ``reshape`` makes of it, whether this
        process serves it or not, and tell its members everywhere; False when nothing changed (or
        there is no such room). The caller keeps the room from being opened meanwhile."""

    @abstractmethod
    async def expire(self, room_name: str) -> bool:
        """Delete a stored room no process here serves (its time is up); False when there was none."""

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

    def join_request(
        self,
        room: Room,
        seat: Seat,
        user: User,
        *,
        member_token: str | None,
        seat_code: str | None,
        new_token: str,
        reseat: bool = False,
    ) -> JoinRequest:
        return JoinRequest(
            user=user.shown(),
            name=user.userName,
            identity=user.identity,
            skeleton=skeleton(user.userName),
            seat=seat.seat_id,
            process=self.process_id,
            presented_token_hash=token_hash(member_token) if member_token else "",
            seat_code_hash=token_hash(normal_seat_code(seat_code)) if seat_code else "",
            new_token_hash=token_hash(new_token) if new_token else "",
            avatar=user.avatarImage,
            plex_user_id=user.plex_id,
            now=self._now_ms(),
            max_members=self.max_members,
            absence_ms=self.absence_ms,
            owner=owner_of(room.state),
            reseat=reseat,
        )


def new_member_token() -> str:
    return secrets.token_urlsafe(32)


def error_reply_of(reply_type: Reply) -> Reply:
    """The error reply of a request whose success is ``reply_type`` (joinRoomSuccess -> joinRoomError)."""
    return Reply(reply_type.replace("Success", "Error"))


def join_refused(
    refusal: Refusal, reply_type: Reply, request: JoinRequest, room: Room, max_members: int
) -> ProtocolError:
    if refusal is Refusal.ROOM_FULL:
        return room_full(reply_type, room.name, max_members)
    if refusal is Refusal.REMOVED:
        return ProtocolError(reply_type, ErrorName.REMOVED_FROM_ROOM, f"the owner of {room.name} removed you from it")
    if refusal is Refusal.NAME_TAKEN and request.seat_code_hash:
        return ProtocolError(reply_type, ErrorName.INVALID_SEAT_CODE, "that seat code is wrong or has expired")
    if refusal is Refusal.NAME_TAKEN:
        return name_taken(reply_type, request.name, room.name)
    return room_not_found(reply_type, room.name)


def rating_refused(refusal: Refusal, user_name: str, media_id: str, *, undoing: bool = False) -> ProtocolError:
    if refusal is Refusal.NOTHING_TO_DO:
        if undoing:
            return not_rated(user_name, media_id)
        return rating_error(ErrorName.ALREADY_RATED, f"{user_name} has already rated this item", media_id)
    if refusal is Refusal.ROOM_ENDED:
        return rating_error(ErrorName.ROOM_ENDED, "this room has ended", media_id)
    if refusal is Refusal.LIKE_CAP:
        return rating_error(ErrorName.LIKE_CAP_REACHED, "you have given every like this room allows", media_id)
    return not_in_room(media_id, "you are no longer a member of this room")


def pick_refused(refusal: Refusal) -> ProtocolError:
    if refusal is Refusal.NOT_OWNER:
        return ProtocolError(Reply.PICK_ERROR, ErrorName.NOT_ROOM_OWNER, "only the room's owner picks again")
    if refusal is Refusal.NOTHING_TO_DO:
        return ProtocolError(Reply.PICK_ERROR, ErrorName.NO_MATCHES, "this room has no match to pick from")
    return ProtocolError(Reply.PICK_ERROR, ErrorName.NOT_IN_ROOM, "join the room first")


def owner_refused(refusal: Refusal, reply_type: Reply, name: str, **extra: object) -> ProtocolError:
    if refusal is Refusal.NO_SUCH_MEMBER:
        return ProtocolError(reply_type, ErrorName.NO_SUCH_MEMBER, f"{name} is not a member of this room", **extra)
    return not_owner(reply_type, **extra)


def not_owner(reply_type: Reply, **extra: object) -> ProtocolError:
    # The same answer whether or not the room exists: an outsider learns nothing from it.
    return ProtocolError(reply_type, ErrorName.NOT_ROOM_OWNER, "you do not own a room of that name", **extra)
