"""A room as one process serves it: its state (``SerializedRoom``), who is connected, its media.

Every change is an event (``server.rooms.events``) applied by ``apply``, which updates the state
(``decisions.apply_event``) and sends this process's members their messages. Who decides the events
is not the room's business: this process (``server.rooms.local``), or Redis for rooms shared by
several processes (``server.rooms.shared``), which then reach every replica in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from server.protocol import Reply, encode
from server.providers import Media
from server.user import User
from storage import SerializedRoom

from .decisions import apply_event
from .events import Deleted, Event, Joined, Left, OnlineSeat, Rated, Undone
from .rules import likers


class Seat(Protocol):
    """A connected member's end of the room: a connection, or a stand-in in tests."""

    # Unique among all connections of all processes.
    seat_id: str

    def send(self, frame: str) -> None:
        """Queue one frame without waiting."""

    def detach(self, room: Room) -> None:
        """The room no longer holds this seat (another connection took the name, or the room was deleted)."""


@dataclass(frozen=True)
class Arrival:
    """A seat about to be seated by its ``Joined`` event, and what it is told then."""

    seat: Seat
    token: str
    reply_type: Reply


class Room:
    def __init__(
        self,
        state: SerializedRoom,
        media: list[Media],
        *,
        on_change: Callable[[Room], None],
        online: dict[str, OnlineSeat] | None = None,
        seq: int = 0,
    ) -> None:
        self.state = state
        self.media = media
        self.media_by_id = {item.id: item for item in media}
        # This process's connections, by member name.
        self.seats: dict[str, Seat] = {}
        # Every connected member, whichever process serves them.
        self.online: dict[str, OnlineSeat] = dict(online or {})
        self.arrivals: dict[str, Arrival] = {}
        # The number of the last shared event applied (0 while no event is numbered).
        self.seq = seq
        self._on_change = on_change

    @property
    def key(self) -> str:
        return self.state.room_key

    @property
    def name(self) -> str:
        return self.state.room_name

    def snapshot(self) -> SerializedRoom:
        """A copy of the persistent state, taken synchronously so a save never sees a half-made change."""
        return self.state.copy_deep()

    def changed(self) -> None:
        """The state changed other than by an event (a legacy room got its order): it needs saving."""
        self._on_change(self)

    # -- delivery ----------------------------------------------------------------------------

    def send_all(self, message_type: Reply, payload: Any, *, exclude: str | None = None) -> None:
        frame = encode(message_type, payload)
        for user_name, seat in list(self.seats.items()):
            if user_name != exclude:
                seat.send(frame)

    def send_to(self, user_name: str, message_type: Reply, payload: Any) -> None:
        seat = self.seats.get(user_name)
        if seat is not None:
            seat.send(encode(message_type, payload))

    def public_user(self, user_name: str) -> dict[str, Any]:
        seat = self.online.get(user_name)
        return seat.user.public() if seat is not None else {"userName": user_name}

    def is_owner(self, user: User) -> bool:
        if self.state.creator_plex_user_id:
            return user.plex_id == self.state.creator_plex_user_id
        return user.userName == self.state.creator_plex_username

    def seat_name(self, seat: Seat) -> str | None:
        """The name this seat holds here (None if another connection holds it now)."""
        return next((held for held, candidate in self.seats.items() if candidate is seat), None)

    def expect(self, seat: Seat, token: str, reply_type: Reply) -> None:
        """A seat whose ``Joined`` event is on its way: it is seated and told when it is applied."""
        self.arrivals[seat.seat_id] = Arrival(seat, token, reply_type)

    # -- applying (every process) ------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        previous = apply_event(self.state, self.online, event)
        if isinstance(event, Joined):
            self._joined(event)
        elif isinstance(event, Left):
            self._left(event, previous)
        elif isinstance(event, Rated):
            self._rated(event)
        elif isinstance(event, Undone):
            self._undone(event)
        else:
            self._deleted(event)
        if event.seq:
            self.seq = event.seq

    def _joined(self, event: Joined) -> None:
        name = event.name
        current = self.seats.get(name)
        if current is not None and current.seat_id != event.online.seat:
            del self.seats[name]
            current.detach(self)
        self._on_change(self)
        if not event.resumed:
            joined = {"user": event.online.user.public(), "progress": self.progress(name)}
            self.send_all(Reply.USER_JOINED_ROOM, joined, exclude=name)
        self.seat_arrival(name, event.online.seat)

    def seat_arrival(self, name: str, seat_id: str) -> None:
        """Seat the connection waiting for this seat (if any) and send it the room."""
        arrival = self.arrivals.pop(seat_id, None)
        if arrival is not None:
            self.seats[name] = arrival.seat
            arrival.seat.send(encode(arrival.reply_type, self.welcome(name, arrival.token)))

    def welcome(self, user_name: str, token: str) -> dict[str, Any]:
        """The JoinRoomSuccess payload for a member just seated."""
        return {
            "previousMatches": self.previous_matches(user_name),
            "media": [item.model_dump(mode="json", exclude_none=True) for item in self.media_for(user_name)],
            "users": [{"user": seat.user.public(), "progress": self.progress(n)} for n, seat in self.online.items()],
            "roomName": self.name,
            "roomType": self.state.room_type,
            "memberToken": token,
        }

    def _left(self, event: Left, unseated: OnlineSeat | None) -> None:
        seat = self.seats.get(event.name)
        if seat is not None and seat.seat_id == event.seat:
            del self.seats[event.name]
        if unseated is not None:
            self.send_all(Reply.USER_LEFT_ROOM, unseated.user.public())
        if event.permanent:
            self._on_change(self)
        for media_id in event.matched:
            self.announce_match(media_id)

    def _rated(self, event: Rated) -> None:
        self._on_change(self)
        self._announce_progress(event.name)
        item = self.media_by_id.get(event.mediaId)
        if event.rating != "like" or item is None:
            return
        if self.state.room_type == "solo":
            self.send_to(event.name, Reply.MATCH, self._match(item, event.at, [event.name]))
        elif event.matchedAt is not None:
            self.announce_match(event.mediaId)

    def _undone(self, event: Undone) -> None:
        self._on_change(self)
        self.send_to(event.name, Reply.UNDO_RATE_SUCCESS, {"mediaId": event.mediaId})
        self._announce_progress(event.name)
        if event.matchRemoved:
            self.send_all(Reply.MATCH_REMOVED, {"mediaId": event.mediaId})

    def _deleted(self, _: Deleted) -> None:
        """Tell every seat the room is gone and release them all."""
        self.send_all(Reply.ROOM_DELETED, {"roomName": self.name})
        seats = list(self.seats.values())
        self.seats.clear()
        for seat in seats:
            seat.detach(self)

    def _announce_progress(self, user_name: str) -> None:
        self.send_all(Reply.USER_PROGRESS, {"user": self.public_user(user_name), "progress": self.progress(user_name)})

    def announce_match(self, media_id: str) -> None:
        """Tell everyone about a group match, with everyone who liked it so far."""
        item = self.media_by_id.get(media_id)
        matched_at = self.state.matches.get(media_id)
        if item is not None and matched_at is not None:
            self.send_all(Reply.MATCH, self._match(item, matched_at, likers(self.state.ratings.get(media_id, []))))

    # -- reading ------------------------------------------------------------------------------

    def progress(self, user_name: str) -> float:
        if not self.media:
            return 0.0
        return min(1.0, self.state.user_progress.get(user_name, 0) / len(self.media))

    def media_for(self, user_name: str) -> list[Media]:
        rated = {
            media_id for media_id, triples in self.state.ratings.items() if any(u == user_name for u, _, _ in triples)
        }
        return [item for item in self.media if item.id not in rated]

    def _match(self, item: Media, matched_at: int, users: Iterable[str]) -> dict[str, Any]:
        return {"matchedAt": matched_at, "media": item.model_dump(mode="json", exclude_none=True), "users": list(users)}

    def previous_matches(self, user_name: str) -> list[dict[str, Any]]:
        if self.state.room_type == "solo":
            own = [
                (at, media_id)
                for media_id, triples in self.state.ratings.items()
                for user, value, at in triples
                if user == user_name and value == "like" and media_id in self.media_by_id
            ]
            return [self._match(self.media_by_id[media_id], at, [user_name]) for at, media_id in sorted(own)]
        return [
            self._match(self.media_by_id[media_id], at, likers(self.state.ratings.get(media_id, [])))
            for media_id, at in sorted(self.state.matches.items(), key=lambda pair: pair[1])
            if media_id in self.media_by_id
        ]
