"""A room as one process serves it: its state (``SerializedRoom``), who is connected, its deck.

Every change is an event (``server.rooms.events``) applied by ``apply``, which updates the state
(``decisions.apply_event``) and sends this process's members their messages. Who decides the events
is not the room's business: this process (``server.rooms.local``), or Redis for rooms shared by
several processes (``server.rooms.shared``), which then reach every replica in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from server.names import skeleton
from server.protocol import Frame, LongFrame, Reply, encode, encode_with_cards
from server.providers import Media
from storage import SerializedRoom

from .decisions import apply_event, has_rated
from .deck import Deck
from .events import Deleted, Event, Joined, Left, OwnerChanged, Picked, Presence, Rated, Removed, Undone
from .rules import ban_key, end_reason, likers, likes_of, match_limit, owner_of


class Seat(Protocol):
    """A connected member's end of the room: a connection, or a stand-in in tests."""

    # Unique among all connections of all processes.
    seat_id: str
    # The cards of a deck it takes at a time (login's window); None: the whole deck (v2).
    window: int | None

    def send(self, frame: Frame) -> None:
        """Queue one frame without waiting."""

    def detach(self, room: Room) -> None:
        """The room no longer holds this seat (another connection took the name, or the room was deleted)."""


# A MovieMatch v2 client's whole deck beyond this many cards is sent as a ``LongFrame``.
LONG_DECK = 2000


@dataclass(frozen=True)
class Arrival:
    """A seat about to be seated by its ``Joined`` event, and what it is told then: ``window``, the
    cards of its deck it takes at a time (None: the whole deck, as MovieMatch v2 has it);
    ``countable``, whether to ask the member to count their watched films too (``countMyWatched``)."""

    seat: Seat
    token: str
    reply_type: Reply
    window: int | None = None
    countable: bool = False


class Room:
    def __init__(
        self,
        state: SerializedRoom,
        deck: Deck,
        *,
        on_change: Callable[[Room], None],
        now_ms: Callable[[], int],
        online: dict[str, Presence] | None = None,
        seq: int = 0,
    ) -> None:
        self.deck = deck
        self.state = state
        # This process's connections, by member name, then seat id (a member may use several).
        self.seats: dict[str, dict[str, Seat]] = {}
        # Every connected member, whichever process serves them.
        self.online: dict[str, Presence] = dict(online or {})
        self.arrivals: dict[str, Arrival] = {}
        # The number of the last shared event applied (0 while no event is numbered).
        self.seq = seq
        self._on_change = on_change
        self._now_ms = now_ms
        # A time limit that had passed when the room was opened needs no announcement.
        self.end_announced = bool(state.ends_at) and now_ms() >= (state.ends_at or 0)

    @property
    def state(self) -> SerializedRoom:
        return self._state

    @state.setter
    def state(self, state: SerializedRoom) -> None:
        self._state = state
        # What each member has rated, and where in the deck their unrated cards begin, as far as
        # asked: kept up to date by ``apply``, forgotten with the state they were read from.
        self._rated_sets: dict[str, set[str]] = {}
        self._unrated_from: dict[str, int] = {}

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
        for user_name, seats in list(self.seats.items()):
            if user_name != exclude:
                for seat in list(seats.values()):
                    seat.send(frame)

    def send_to(self, user_name: str, message_type: Reply, payload: Any) -> None:
        """To every connection of one member."""
        frame = encode(message_type, payload)
        for seat in list(self.seats.get(user_name, {}).values()):
            seat.send(frame)

    def public_user(self, user_name: str) -> dict[str, Any]:
        presence = self.online.get(user_name)
        return presence.user.public() if presence is not None else {"userName": user_name}

    def owner_name(self) -> str | None:
        """The name of the member who owns the room (None when no member does)."""
        owner = owner_of(self.state)
        return next(
            (
                name
                for name, member in self.state.members.items()
                if ban_key(member.identity, member.skeleton or skeleton(name)) == owner
            ),
            None,
        )

    def seat_name(self, seat: Seat) -> str | None:
        """The name this seat holds here (None if it holds none now)."""
        return next((name for name, seats in self.seats.items() if seats.get(seat.seat_id) is seat), None)

    def _unseat(self, name: str, keep: str | None = None, *, told: tuple[Reply, Any] | None = None) -> None:
        """Release this process's connections of a member (all but ``keep``), telling them first."""
        seats = self.seats.get(name, {})
        for seat_id, seat in list(seats.items()):
            if seat_id == keep:
                continue
            del seats[seat_id]
            if told is not None:
                seat.send(encode(*told))
            seat.detach(self)
        if not seats:
            self.seats.pop(name, None)

    def expect(self, arrival: Arrival) -> None:
        """A seat whose ``Joined`` event is on its way: it is seated and told when it is applied."""
        self.arrivals[arrival.seat.seat_id] = arrival

    # -- applying (every process) ------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        ended_before = isinstance(event, Rated) and self._ended_for(event.name)
        previous = apply_event(self.state, self.online, event)
        self._track_rated(event)
        if isinstance(event, Joined):
            self._joined(event)
        elif isinstance(event, Left | Removed):
            self._left(event, previous)
        elif isinstance(event, Rated):
            self._rated(event)
            if not ended_before and self._ended_for(event.name):
                self._announce_end(event.name)
        elif isinstance(event, Picked):
            self._on_change(self)
            item = self.deck.get(event.mediaId)
            if item is not None:
                self.send_all(Reply.PICKED, {"mediaId": event.mediaId, "media": item.wire(), "at": event.at})
        elif isinstance(event, Undone):
            self._undone(event)
        elif isinstance(event, Deleted):
            self._deleted(event)
        else:
            self._on_change(self)
            if isinstance(event, OwnerChanged):
                self.send_all(Reply.OWNER_CHANGED, {"userName": self.owner_name()})
        if event.seq:
            self.seq = event.seq

    def _joined(self, event: Joined) -> None:
        name = event.name
        if event.replaces:
            self._unseat(name, keep=event.seat)
        self._on_change(self)
        if not event.resumed:
            joined = {"user": event.user.public(), "progress": self.progress(name)}
            self.send_all(Reply.USER_JOINED_ROOM, joined, exclude=name)
        if event.owner is not None:
            self.send_all(Reply.OWNER_CHANGED, {"userName": name}, exclude=name)
        self.seat_arrival(name, event.seat)

    def seat_arrival(self, name: str, seat_id: str) -> None:
        """Seat the connection waiting for this seat (if any) and send it the room."""
        arrival = self.arrivals.pop(seat_id, None)
        if arrival is not None:
            self.seats.setdefault(name, {})[seat_id] = arrival.seat
            arrival.seat.send(self._welcome_frame(name, arrival))

    def _welcome_frame(self, user_name: str, arrival: Arrival) -> Frame:
        """JoinRoomSuccess (or what ``arrival`` asks for): the room, and the member's cards, the
        first window of them or (MovieMatch v2) all of them."""
        payload = self.welcome(user_name, arrival.token, countable=arrival.countable)
        rated = self.rated_by(user_name)
        if arrival.window is not None:
            cards, after, more = self.deck.window(self._unrated_start(user_name), arrival.window, rated)
            payload["window"] = {"after": after, "more": more}
            return encode_with_cards(arrival.reply_type, payload, cards)
        if len(self.deck) - len(rated) <= LONG_DECK:
            return encode_with_cards(arrival.reply_type, payload, self.deck.after(0, rated))
        # Read while it is sent: what the member had rated when seated.
        return LongFrame(arrival.reply_type, payload, self.deck.after(0, frozenset(rated)))

    def welcome(self, user_name: str, token: str, *, countable: bool = False) -> dict[str, Any]:
        """The JoinRoomSuccess payload for a member just seated, but its ``media``."""
        welcome: dict[str, Any] = {
            "previousMatches": self.previous_matches(user_name),
            "users": [
                {"user": presence.user.public(), "progress": self.progress(n)} for n, presence in self.online.items()
            ],
            "roomName": self.name,
            "joinCode": self.state.join_code,
            "roomType": self.state.room_type,
            "memberToken": token,
            "userName": user_name,
            "rules": self.rules(),
        }
        owner = self.owner_name()
        if owner is not None:
            welcome["roomOwner"] = owner
        reason = end_reason(self.state, user_name, self._now_ms())
        if reason is not None:
            welcome["ended"] = {"reason": reason}
        item = self.deck.get(self.state.pick.media_id) if self.state.pick is not None else None
        if self.state.pick is not None and item is not None:
            welcome["pick"] = {"mediaId": item.id, "media": item.wire(), "at": self.state.pick.at}
        if self.state.like_cap:
            welcome["likesLeft"] = max(0, self.state.like_cap - likes_of(self.state, user_name))
        unwatched = self.state.unwatched
        if unwatched is not None:
            member = self.state.members.get(user_name)
            welcome["unwatched"] = {
                "people": len(unwatched.people),
                "members": unwatched.members,
                "counted": member is not None and member.identity in unwatched.people,
                "ask": countable,
            }
        return welcome

    def rules(self) -> dict[str, Any]:
        """What makes a match and when the room ends, as the room's header tells it."""
        rules: dict[str, Any] = {"roomType": self.state.room_type, "matchThreshold": self.state.match_threshold}
        for key, value in (
            ("matchLimit", match_limit(self.state)),
            ("endsAt", self.state.ends_at),
            ("likeCap", self.state.like_cap),
        ):
            if value:
                rules[key] = value
        return rules

    def _ended_for(self, user_name: str) -> bool:
        return end_reason(self.state, user_name, self._now_ms()) is not None

    def _announce_end(self, user_name: str) -> None:
        """The room has just ended (a solo room, for this user): tell whom it concerns."""
        reason = end_reason(self.state, user_name, self._now_ms())
        payload = {"roomName": self.name, "reason": reason}
        if self.state.room_type == "solo" and reason == "matches":
            self.send_to(user_name, Reply.ROOM_ENDED, payload)
        else:
            self.end_announced = reason == "time" or self.end_announced
            self.send_all(Reply.ROOM_ENDED, payload)

    def time_up(self) -> None:
        """Called once the room's time limit has passed: say so, once."""
        if not self.end_announced:
            self.end_announced = True
            self.send_all(Reply.ROOM_ENDED, {"roomName": self.name, "reason": "time"})

    def _left(self, event: Left | Removed, previous: Presence | None) -> None:
        name = event.name
        if isinstance(event, Removed):
            self._unseat(name, told=(Reply.REMOVED_FROM_ROOM, {"roomName": self.name}))
        elif event.permanent:
            # Its other connections leave with it; the one that asked is told by its own reply.
            self.seats.get(name, {}).pop(event.seat, None)
            self._unseat(name, told=(Reply.LEAVE_ROOM_SUCCESS, None))
        else:
            self.seats.get(name, {}).pop(event.seat, None)
            if not self.seats.get(name):
                self.seats.pop(name, None)
        if previous is not None and name not in self.online:
            self.send_all(Reply.USER_LEFT_ROOM, previous.user.public())
        self._on_change(self)
        if isinstance(event, Removed):
            self.send_all(Reply.MEMBER_REMOVED, {"userName": name})
        for media_id in event.matched:
            self.announce_match(media_id)

    def _rated(self, event: Rated) -> None:
        self._on_change(self)
        self._announce_progress(event.name)
        item = self.deck.get(event.mediaId)
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

    def redeal(self, state: SerializedRoom, deck: Deck) -> None:
        """Take a new deck and settings (a standing room following its definition or its library, a
        room leaving out what its people watched) and say what changed: to each member the films of
        the deck they have not rated that are new to it, the ones that left it, and the rules; then
        everyone's progress (its size changed), the matches that came or went, and the end, when the
        new rules end the room."""
        before, known, rules = self.state, self.deck, self.rules()
        self.state, self.deck = state, deck
        self._on_change(self)
        added = [item for item in deck if item.id not in known]
        removed = [item.id for item in known if item.id not in deck]
        # Positions in the deck hold while films are only appended; else a seat taking windows
        # is given its first window again (what it holds would skip or repeat films).
        old_ids = before.media_ids or []
        appended = (state.media_ids or [])[: len(old_ids)] == old_ids
        # A change members cannot see (a password, who is counted) is not news.
        news = bool(added or removed) or self.rules() != rules or not appended
        for name, seats in list(self.seats.items()) if news else ():
            changed = {"roomName": self.name, "rules": self.rules(), "removed": removed}
            fresh = [item.wire() for item in added if not has_rated(state, name, item.id)]
            plain = encode(Reply.ROOM_CHANGED, changed | {"added": fresh})
            for seat in list(seats.values()):
                if seat.window is None or appended:
                    seat.send(plain)
                else:
                    cards, after, more = self.deck.window(self._unrated_start(name), seat.window, self.rated_by(name))
                    dealt = changed | {"added": [], "window": {"after": after, "more": more}}
                    seat.send(encode_with_cards(Reply.ROOM_CHANGED, dealt, cards))
        for name in list(self.online):
            self._announce_progress(name)
        for media_id in sorted(state.matches.keys() - before.matches.keys()):
            self.announce_match(media_id)
        for media_id in sorted(before.matches.keys() - state.matches.keys()):
            self.send_all(Reply.MATCH_REMOVED, {"mediaId": media_id})
        now = self._now_ms()
        reason = end_reason(state, "", now)
        if state.room_type != "solo" and reason is not None and end_reason(before, "", now) is None:
            self.end_announced = reason == "time" or self.end_announced
            self.send_all(Reply.ROOM_ENDED, {"roomName": self.name, "reason": reason})

    def _deleted(self, _: Deleted) -> None:
        """Tell every seat the room is gone and release them all."""
        for name in list(self.seats):
            self._unseat(name, told=(Reply.ROOM_DELETED, {"roomName": self.name}))

    def _announce_progress(self, user_name: str) -> None:
        self.send_all(Reply.USER_PROGRESS, {"user": self.public_user(user_name), "progress": self.progress(user_name)})

    def announce_match(self, media_id: str) -> None:
        """Tell everyone about a group match, with everyone who liked it so far."""
        item = self.deck.get(media_id)
        matched_at = self.state.matches.get(media_id)
        if item is not None and matched_at is not None:
            self.send_all(Reply.MATCH, self._match(item, matched_at, likers(self.state.ratings.get(media_id, []))))

    # -- reading ------------------------------------------------------------------------------

    def progress(self, user_name: str) -> float:
        if not self.deck:
            return 0.0
        return min(1.0, self.state.user_progress.get(user_name, 0) / len(self.deck))

    def rated_by(self, user_name: str) -> set[str]:
        """The ids of the items a member has rated (kept while the state lasts: never change it)."""
        rated = self._rated_sets.get(user_name)
        if rated is None:
            rated = self._rated_sets[user_name] = {
                media_id
                for media_id, triples in self.state.ratings.items()
                if any(user == user_name for user, _, _ in triples)
            }
        return rated

    def window(self, user_name: str, start: int, count: int) -> tuple[list[Media], int, bool]:
        """Up to ``count`` cards the member has not rated from deck position ``start`` on, where the
        next window starts, and whether cards are left after these (``Deck.window``)."""
        return self.deck.window(start, count, self.rated_by(user_name))

    def _unrated_start(self, user_name: str) -> int:
        """Where the member's first unrated card is: a rejoin resumes there, however far along."""
        start = self.deck.first_unrated(self._unrated_from.get(user_name, 0), self.rated_by(user_name))
        self._unrated_from[user_name] = start
        return start

    def _track_rated(self, event: Event) -> None:
        if isinstance(event, Rated | Undone):
            rated = self._rated_sets.get(event.name)
            if rated is not None and isinstance(event, Rated):
                rated.add(event.mediaId)
            elif isinstance(event, Undone):
                if rated is not None:
                    rated.discard(event.mediaId)
                self._unrated_from.pop(event.name, None)  # the card is unrated again, maybe earlier

    def _match(self, item: Media, matched_at: int, users: Iterable[str]) -> dict[str, Any]:
        return {"matchedAt": matched_at, "media": item.wire(), "users": list(users)}

    def previous_matches(self, user_name: str) -> list[dict[str, Any]]:
        if self.state.room_type == "solo":
            own = [
                (at, media_id)
                for media_id, triples in self.state.ratings.items()
                for user, value, at in triples
                if user == user_name and value == "like" and media_id in self.deck
            ]
            return [self._match(self.deck[media_id], at, [user_name]) for at, media_id in sorted(own)]
        return [
            self._match(self.deck[media_id], at, likers(self.state.ratings.get(media_id, [])))
            # In match order; matches of one millisecond by id, the same after any restore.
            for media_id, at in sorted(self.state.matches.items(), key=lambda pair: (pair[1], pair[0]))
            if media_id in self.deck
        ]
