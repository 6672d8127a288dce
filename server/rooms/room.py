"""A room: its persistent state (``SerializedRoom``) and its runtime state (connected members, media).

Every change is an event (``server.rooms.events``) applied by ``apply``, which updates the state
and sends the connected members their messages. A room served by this process alone decides the
events itself, in synchronous methods, so within one event loop no two messages interleave inside
one: no lost ratings, no double matches, no progress drift. A room shared by several processes gets
its events from Redis, decided there atomically, and applies them in their numbered order.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from server.protocol import ProtocolError, encode
from server.providers import Media
from server.user import User
from storage import Member, RatingValue, SerializedRoom

from .events import Deleted, Event, Joined, Left, OnlineSeat, Rated, Undone
from .rules import is_group_match, likers


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
    reply_type: str


def token_hash(token: str) -> str:
    # Member tokens are 256-bit random strings, so one SHA-256 is enough (no key stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def rating_error(name: str, message: str, media_id: str) -> ProtocolError:
    return ProtocolError("rateError", name, message, mediaId=media_id)


def new_member(user: User, existing: Member | None, joined_at: int) -> tuple[Member, str]:
    """The member as a join leaves it, with a fresh member token (returned in clear)."""
    token = secrets.token_urlsafe(32)
    member = existing or Member(joined_at=joined_at, plex_user_id=user.plex_id)
    return member.model_copy(update={"token_hash": token_hash(token), "avatar_image": user.avatarImage}), token


class Room:
    def __init__(
        self,
        state: SerializedRoom,
        media: list[Media],
        *,
        now_ms: Callable[[], int],
        on_change: Callable[[Room], None],
        max_members: int = 50,
        online: dict[str, OnlineSeat] | None = None,
        seq: int = 0,
    ) -> None:
        self.state = state
        self.max_members = max_members
        self.media = media
        self.media_by_id = {item.id: item for item in media}
        # This process's connections, by member name.
        self.seats: dict[str, Seat] = {}
        # Every connected member, whichever process serves them.
        self.online: dict[str, OnlineSeat] = dict(online or {})
        self.arrivals: dict[str, Arrival] = {}
        # The number of the last shared event applied (0 while no event is numbered).
        self.seq = seq
        self._now_ms = now_ms
        self._on_change = on_change

    @property
    def key(self) -> str:
        return self.state.room_key

    @property
    def name(self) -> str:
        return self.state.room_name

    @property
    def end_on_first_match(self) -> bool:
        return "EndOnFirstMatch" in self.state.options

    def snapshot(self) -> SerializedRoom:
        """A copy of the persistent state, taken synchronously so a save never sees a half-made change."""
        return self.state.copy_deep()

    def _changed(self) -> None:
        self._on_change(self)

    # -- delivery ----------------------------------------------------------------------------

    def send_all(self, message_type: str, payload: Any, *, exclude: str | None = None) -> None:
        frame = encode(message_type, payload)
        for user_name, seat in list(self.seats.items()):
            if user_name != exclude:
                seat.send(frame)

    def _send_to(self, user_name: str, message_type: str, payload: Any) -> None:
        seat = self.seats.get(user_name)
        if seat is not None:
            seat.send(encode(message_type, payload))

    def public_user(self, user_name: str) -> dict[str, Any]:
        seat = self.online.get(user_name)
        return seat.user.public() if seat is not None else {"userName": user_name}

    # -- deciding (a room this process alone serves) ------------------------------------------

    def is_owner(self, user: User) -> bool:
        if self.state.creator_plex_user_id:
            return user.plex_id == self.state.creator_plex_user_id
        return user.userName == self.state.creator_plex_username

    def check_room_for(self, user_name: str) -> Member | None:
        """The member of that name; RoomFull when there is none and no room for one more."""
        member = self.state.members.get(user_name)
        if member is None and len(self.state.members) >= self.max_members:
            raise ProtocolError("joinRoomError", "RoomFull", f"{self.name} has its {self.max_members} members")
        return member

    def join(self, seat: Seat, user: User, member_token: str | None, reply_type: str) -> None:
        """Seat a connection and send it ``reply_type`` with the room (and a fresh memberToken)."""
        name = user.userName
        # Checked here, in the one synchronous step that adds the member: joins racing each
        # other cannot overshoot the limit.
        member = self.check_room_for(name)
        holder = self.online.get(name)
        if holder is not None and holder.seat != seat.seat_id:
            presented = token_hash(member_token) if member_token else ""
            if member is None or member.token_hash is None or not hmac.compare_digest(presented, member.token_hash):
                raise ProtocolError("joinRoomError", "UserAlreadyJoinedError", f"{name} is already in room {self.name}")
            # Otherwise the same person reconnecting (reload, network change) before the old socket was noticed gone.
        member, token = new_member(user, member, self._now_ms())
        self.arrivals[seat.seat_id] = Arrival(seat, token, reply_type)
        online = OnlineSeat(seat=seat.seat_id, user=user)
        progress = self.state.user_progress.get(name, 0)
        self.apply(Joined(name=name, member=member, online=online, resumed=holder is not None, progress=progress))

    def seat_name(self, seat: Seat) -> str | None:
        """The name this seat holds here (None if another connection holds it now)."""
        return next((held for held, candidate in self.seats.items() if candidate is seat), None)

    def leave(self, seat: Seat, *, permanently: bool) -> None:
        """A connection closed (the member stays a member and counts for unanimous rooms), or
        ``leaveRoom`` (the member leaves, which can complete unanimous matches)."""
        name = self.seat_name(seat)
        if name is None:
            return
        matched = []
        if permanently and self.state.room_type == "unanimous":
            staying = [member for member in self.state.members if member != name]
            matched = [
                media_id
                for media_id, triples in self.state.ratings.items()
                if media_id not in self.state.matches and is_group_match("unanimous", 0, likers(triples), staying)
            ]
        self.apply(Left(name=name, seat=seat.seat_id, permanent=permanently, matched=matched, matchedAt=self._now_ms()))

    def check_rating(self, user_name: str, media_id: str) -> None:
        """The checks every process can make alone: the item is in the room, the room goes on."""
        if media_id not in self.media_by_id:
            raise rating_error("UnknownMedia", f"{media_id} is not in this room", media_id)
        if self.ended_for(user_name):
            raise rating_error("RoomEnded", "this room has its match", media_id)

    def rate(self, user_name: str, media_id: str, rating: RatingValue) -> bool:
        """Record a rating; True when it made a new match."""
        self.check_rating(user_name, media_id)
        triples = self.state.ratings.get(media_id, [])
        if any(user == user_name for user, _, _ in triples):
            raise already_rated(user_name, media_id)
        now = self._now_ms()
        matched_at = self.state.matches.get(media_id)
        new_match = (
            rating == "like"
            and matched_at is None
            and is_group_match(
                self.state.room_type,
                self.state.match_threshold,
                [*likers(triples), user_name],
                self.state.members,
            )
        )
        if new_match:
            matched_at = now
        progress = self.state.user_progress.get(user_name, 0) + 1
        if rating != "like" or self.state.room_type == "solo":
            matched_at = None
        self.apply(
            Rated(name=user_name, mediaId=media_id, rating=rating, at=now, progress=progress, matchedAt=matched_at)
        )
        return new_match

    def undo(self, user_name: str, media_id: str) -> None:
        triples = self.state.ratings.get(media_id, [])
        kept = [triple for triple in triples if triple[0] != user_name]
        if media_id not in self.media_by_id or len(kept) == len(triples):
            raise not_rated(user_name, media_id)
        removed = (
            self.state.room_type != "solo"
            and media_id in self.state.matches
            and not is_group_match(self.state.room_type, self.state.match_threshold, likers(kept), self.state.members)
        )
        progress = max(0, self.state.user_progress.get(user_name, 0) - 1)
        self.apply(Undone(name=user_name, mediaId=media_id, progress=progress, matchRemoved=removed))

    # -- applying (every process) ------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        if isinstance(event, Joined):
            self._joined(event)
        elif isinstance(event, Left):
            self._left(event)
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
        self.state.members[name] = event.member
        self.state.user_progress[name] = event.progress
        current = self.seats.get(name)
        if current is not None and current.seat_id != event.online.seat:
            del self.seats[name]
            current.detach(self)
        self.online[name] = event.online
        self._changed()
        if not event.resumed:
            joined = {"user": event.online.user.public(), "progress": self.progress(name)}
            self.send_all("userJoinedRoom", joined, exclude=name)
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
            "media": [item.wire() for item in self.media_for(user_name)],
            "users": [{"user": seat.user.public(), "progress": self.progress(n)} for n, seat in self.online.items()],
            "roomName": self.name,
            "roomType": self.state.room_type,
            "memberToken": token,
        }

    def _left(self, event: Left) -> None:
        name = event.name
        seat = self.seats.get(name)
        if seat is not None and seat.seat_id == event.seat:
            del self.seats[name]
        held = self.online.get(name)
        if held is not None and held.seat == event.seat:
            del self.online[name]
            self.send_all("userLeftRoom", held.user.public())
        if event.permanent:
            self.state.members.pop(name, None)
            self._changed()
        for media_id in event.matched:
            self.state.matches[media_id] = event.matchedAt
            self.announce_match(media_id)

    def _rated(self, event: Rated) -> None:
        name, media_id = event.name, event.mediaId
        self.state.ratings.setdefault(media_id, []).append((name, event.rating, event.at))
        self.state.user_progress[name] = event.progress
        self._changed()
        self._announce_progress(name)
        item = self.media_by_id.get(media_id)
        if event.rating != "like" or item is None:
            return
        if self.state.room_type == "solo":
            self._send_to(name, "match", self._match(item, event.at, [name]))
        elif event.matchedAt is not None:
            self.state.matches.setdefault(media_id, event.matchedAt)
            self.announce_match(media_id)

    def _undone(self, event: Undone) -> None:
        name, media_id = event.name, event.mediaId
        kept = [triple for triple in self.state.ratings.get(media_id, []) if triple[0] != name]
        if kept:
            self.state.ratings[media_id] = kept
        else:
            self.state.ratings.pop(media_id, None)
        self.state.user_progress[name] = event.progress
        self._changed()
        self._send_to(name, "undoRateSuccess", {"mediaId": media_id})
        self._announce_progress(name)
        if event.matchRemoved:
            self.state.matches.pop(media_id, None)
            self.send_all("matchRemoved", {"mediaId": media_id})

    def _deleted(self, _: Deleted) -> None:
        """Tell every seat the room is gone and release them all."""
        self.send_all("roomDeleted", {"roomName": self.name})
        seats = list(self.seats.values())
        self.seats.clear()
        self.online.clear()
        for seat in seats:
            seat.detach(self)

    def _announce_progress(self, user_name: str) -> None:
        self.send_all("userProgress", {"user": self.public_user(user_name), "progress": self.progress(user_name)})

    def announce_match(self, media_id: str) -> None:
        """Tell everyone about a group match, with everyone who liked it so far."""
        item = self.media_by_id.get(media_id)
        matched_at = self.state.matches.get(media_id)
        if item is not None and matched_at is not None:
            self.send_all("match", self._match(item, matched_at, likers(self.state.ratings.get(media_id, []))))

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

    def ended_for(self, user_name: str) -> bool:
        if not self.end_on_first_match:
            return False
        if self.state.room_type == "solo":
            return any(u == user_name and v == "like" for triples in self.state.ratings.values() for u, v, _ in triples)
        return bool(self.state.matches)

    def _match(self, item: Media, matched_at: int, users: Iterable[str]) -> dict[str, Any]:
        return {"matchedAt": matched_at, "media": item.wire(), "users": list(users)}

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


def already_rated(user_name: str, media_id: str) -> ProtocolError:
    return rating_error("AlreadyRated", f"{user_name} has already rated this item", media_id)


def not_rated(user_name: str, media_id: str) -> ProtocolError:
    return rating_error("NotRated", f"{user_name} has not rated {media_id}", media_id)
