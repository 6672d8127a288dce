"""A room: its persistent state (``SerializedRoom``) and its runtime state (connected members, media).

Every method that changes a room is synchronous, so within one event loop no two messages can
interleave inside it: no lost ratings, no double matches, no progress drift.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from server.protocol import ProtocolError, encode
from server.providers import Media
from storage import Member, RatingValue, SerializedRoom

from .rules import is_group_match, likers


class User(BaseModel):
    """Who is behind a connection; ``plex_id`` stays on the server."""

    model_config = ConfigDict(frozen=True)
    userName: str
    avatarImage: str | None = None
    permissions: list[str] = []
    plex_id: str | None = None

    @cached_property
    def _public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"plex_id"})

    def public(self) -> dict[str, Any]:
        """What other members may see (a copy: callers put it into messages)."""
        return dict(self._public)


class Seat(Protocol):
    """A connected member's end of the room: a connection, or a stand-in in tests."""

    def send(self, frame: str) -> None:
        """Queue one frame without waiting."""

    def detach(self, room: Room) -> None:
        """The room no longer holds this seat (another connection took the name, or the room was deleted)."""


def token_hash(token: str) -> str:
    # Member tokens are 256-bit random strings, so one SHA-256 is enough (no key stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def rating_error(name: str, message: str, media_id: str) -> ProtocolError:
    return ProtocolError("rateError", name, message, mediaId=media_id)


class Room:
    def __init__(
        self,
        state: SerializedRoom,
        media: list[Media],
        *,
        now_ms: Callable[[], int],
        on_change: Callable[[Room], None],
        max_members: int = 50,
    ) -> None:
        self.state = state
        self.max_members = max_members
        self.media = media
        self.media_by_id = {item.id: item for item in media}
        self.seats: dict[str, Seat] = {}
        self.online: dict[str, User] = {}
        self._now_ms = now_ms
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

    def _changed(self) -> None:
        self._on_change(self)

    # -- delivery ----------------------------------------------------------------------------

    def _send_all(self, message_type: str, payload: Any, *, exclude: str | None = None) -> None:
        frame = encode(message_type, payload)
        for user_name, seat in list(self.seats.items()):
            if user_name != exclude:
                seat.send(frame)

    def _send_to(self, user_name: str, message_type: str, payload: Any) -> None:
        seat = self.seats.get(user_name)
        if seat is not None:
            seat.send(encode(message_type, payload))

    # -- membership ----------------------------------------------------------------------------

    def is_owner(self, user: User) -> bool:
        if self.state.creator_plex_user_id:
            return user.plex_id == self.state.creator_plex_user_id
        return user.userName == self.state.creator_plex_username

    def join(self, seat: Seat, user: User, member_token: str | None) -> dict[str, Any]:
        """Seat a connection; returns the JoinRoomSuccess payload (with a fresh memberToken)."""
        name = user.userName
        current = self.seats.get(name)
        member = self.state.members.get(name)
        if member is None and len(self.state.members) >= self.max_members:
            # Checked here, in the one synchronous step that adds the member: joins racing each
            # other cannot overshoot the limit.
            raise ProtocolError("joinRoomError", "RoomFull", f"{self.name} has its {self.max_members} members")
        if current is not None and current is not seat:
            presented = token_hash(member_token) if member_token else ""
            if member is None or member.token_hash is None or not hmac.compare_digest(presented, member.token_hash):
                raise ProtocolError("joinRoomError", "UserAlreadyJoinedError", f"{name} is already in room {self.name}")
            # The same person reconnecting (reload, network change) before the old socket was noticed gone.
            current.detach(self)
        token = secrets.token_urlsafe(32)
        if member is None:
            member = Member(joined_at=self._now_ms(), plex_user_id=user.plex_id)
        self.state.members[name] = member.model_copy(
            update={"token_hash": token_hash(token), "avatar_image": user.avatarImage}
        )
        self.state.user_progress.setdefault(name, 0)
        self.seats[name] = seat
        self.online[name] = user
        self._changed()
        if current is None:
            self._send_all("userJoinedRoom", {"user": user.public(), "progress": self.progress(name)}, exclude=name)
        return {
            "previousMatches": self.previous_matches(name),
            "media": [item.model_dump(mode="json", exclude_none=True) for item in self.media_for(name)],
            "users": [{"user": u.public(), "progress": self.progress(n)} for n, u in self.online.items()],
            "roomName": self.name,
            "roomType": self.state.room_type,
            "memberToken": token,
        }

    def disconnect(self, seat: Seat) -> None:
        """A connection closed: the member stays a member (and counts for unanimous rooms)."""
        self._unseat(seat)

    def leave(self, seat: Seat) -> None:
        """``leaveRoom``: the user stops being a member, which can complete unanimous matches."""
        name = self._unseat(seat)
        if name is not None:
            self.state.members.pop(name, None)
            self._changed()
            if self.state.room_type == "unanimous":
                for media_id in list(self.state.ratings):
                    self._settle_group_match(media_id, announce_update=False)

    def _unseat(self, seat: Seat) -> str | None:
        """Remove a seat; returns the name it held (None if another connection holds the name now)."""
        name = next((held for held, candidate in self.seats.items() if candidate is seat), None)
        if name is not None:
            del self.seats[name]
            user = self.online.pop(name)
            self._send_all("userLeftRoom", user.public())
        return name

    def close(self, message_type: str, payload: Any) -> list[Seat]:
        """Tell every seat something final (room deleted) and release them all."""
        self._send_all(message_type, payload)
        seats = list(self.seats.values())
        self.seats.clear()
        self.online.clear()
        for seat in seats:
            seat.detach(self)
        return seats

    # -- ratings ----------------------------------------------------------------------------

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
        if "EndOnFirstMatch" not in self.state.options:
            return False
        if self.state.room_type == "solo":
            return any(u == user_name and v == "like" for triples in self.state.ratings.values() for u, v, _ in triples)
        return bool(self.state.matches)

    def rate(self, user_name: str, media_id: str, rating: RatingValue) -> None:
        item = self.media_by_id.get(media_id)
        if item is None:
            raise rating_error("UnknownMedia", f"{media_id} is not in this room", media_id)
        if self.ended_for(user_name):
            raise rating_error("RoomEnded", "this room has its match", media_id)
        triples = self.state.ratings.setdefault(media_id, [])
        if any(user == user_name for user, _, _ in triples):
            raise rating_error("AlreadyRated", f"{user_name} has already rated this item", media_id)
        now = self._now_ms()
        triples.append((user_name, rating, now))
        self.state.user_progress[user_name] = self.state.user_progress.get(user_name, 0) + 1
        self._changed()
        self._announce_progress(user_name)
        if rating != "like":
            return
        if self.state.room_type == "solo":
            self._send_to(user_name, "match", self._match(item, now, [user_name]))
        else:
            self._settle_group_match(media_id, announce_update=True)

    def undo(self, user_name: str, media_id: str) -> None:
        triples = self.state.ratings.get(media_id, [])
        kept = [triple for triple in triples if triple[0] != user_name]
        if media_id not in self.media_by_id or len(kept) == len(triples):
            raise rating_error("NotRated", f"{user_name} has not rated {media_id}", media_id)
        if kept:
            self.state.ratings[media_id] = kept
        else:
            del self.state.ratings[media_id]
        self.state.user_progress[user_name] = max(0, self.state.user_progress.get(user_name, 0) - 1)
        self._changed()
        self._send_to(user_name, "undoRateSuccess", {"mediaId": media_id})
        self._announce_progress(user_name)
        if self.state.room_type == "solo":
            return
        if media_id in self.state.matches and not is_group_match(
            self.state.room_type, self.state.match_threshold, likers(kept), self.state.members
        ):
            del self.state.matches[media_id]
            self._send_all("matchRemoved", {"mediaId": media_id})

    def _announce_progress(self, user_name: str) -> None:
        user = self.online.get(user_name)
        public = user.public() if user is not None else {"userName": user_name}
        self._send_all("userProgress", {"user": public, "progress": self.progress(user_name)})

    def _settle_group_match(self, media_id: str, *, announce_update: bool) -> None:
        """Record a new match, or re-announce an existing one that gained a like."""
        item = self.media_by_id.get(media_id)
        if item is None:
            return
        liked_by = likers(self.state.ratings.get(media_id, []))
        matched_at = self.state.matches.get(media_id)
        if matched_at is None:
            if not is_group_match(self.state.room_type, self.state.match_threshold, liked_by, self.state.members):
                return
            matched_at = self.state.matches[media_id] = self._now_ms()
            self._changed()
        elif not announce_update:
            return
        self._send_all("match", self._match(item, matched_at, liked_by))

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
