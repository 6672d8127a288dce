"""What shared rooms need from the place that decides their changes: Redis, or a stand-in in memory.

A ``Live`` decides each change atomically, records it, and publishes its event, numbered by the
room's sequence, on the room's channel; it keeps presence (which process seats whom) with
heartbeats. ``server.rooms.shared.redis.RedisLive`` does it with Lua scripts; ``memory.MemoryLive``
does it in this process, with the Python decisions, so the shared rooms' logic is testable without
a Redis server (the way encode/broadcaster has a memory backend).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from storage import RatingValue, SerializedRoom

from ..decisions import Actor, JoinRequest
from ..rules import Ending, Refusal


@dataclass(frozen=True)
class LiveRoom:
    """A room as stored, who is connected to it (raw entries), and the number of its last event."""

    room: SerializedRoom
    online: dict[str, dict[str, Any]]
    seq: int


@dataclass(frozen=True)
class RateOutcome:
    seq: int
    new_match: bool
    # The event as published, when the Live returns it: the deciding process applies it at once
    # instead of after its trip through the subscription (which then brings nothing new).
    event: str | None = None


class Subscription(Protocol):
    """The process's one subscription to room channels: events in, in publication order."""

    @property
    def connected(self) -> anyio.Event: ...

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the confirmation: events published after it are delivered."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def run(self) -> None:
        """Keep the subscription up (re-made after any failure) until cancelled."""


# on_event(channel, data): an event arrived. on_subscribed(channel): a subscription was confirmed,
# the first one or one re-made after a lost connection (events may have been missed meanwhile).
OnEvent = Callable[[str, str], None]
OnSubscribed = Callable[[str], None]


class Live(Protocol):
    """The operations of one server process (``process_id``) on the rooms it shares."""

    process_id: str

    def channel(self, room_name: str) -> str: ...

    def subscription(self, on_event: OnEvent, on_subscribed: OnSubscribed) -> Subscription: ...

    async def run(self) -> None:
        """Background work of the transport, until cancelled."""

    async def read(self, room_name: str) -> LiveRoom | None:
        """The room, who is connected, and its event number, read at one instant."""

    async def join(self, room_name: str, request: JoinRequest) -> int | Refusal:
        """Seat a connection (the event's number), or why not (``decisions.decide_join``); the
        request's process is this one."""

    async def leave(
        self, room_name: str, name: str, seat: str, *, permanent: bool, room_type: str, now_ms: int
    ) -> int | None:
        """Unseat a member (the event's number); None when that seat no longer holds the name."""

    async def rate(
        self,
        room_name: str,
        name: str,
        media_id: str,
        rating: RatingValue,
        at_ms: int,
        *,
        room_type: str,
        threshold: int,
        ending: Ending,
    ) -> RateOutcome | Refusal: ...

    async def undo(
        self, room_name: str, name: str, media_id: str, *, room_type: str, threshold: int
    ) -> int | Refusal: ...

    async def manage(
        self, room_name: str, *, actor: Actor, action: str, name: str, code_hash: str, owner: str, now_ms: int
    ) -> int | Refusal:
        """The owner's action on a member (``decisions.decide_member_action``); ``owner`` is the
        room's owner as the caller derives it, for rooms that store none."""

    async def pick(self, room_name: str, *, actor: Actor, media_id: str, owner: str, now_ms: int) -> int | Refusal:
        """Record the pick of one of the room's matches (``decisions.decide_pick``)."""

    async def delete(self, room_name: str, *, actor: Actor, owner: str) -> int | Refusal:
        """Delete the room and tell its processes (the event's number), or why not."""

    async def replace(self, room_name: str, room: SerializedRoom, *, seq: int) -> int | None:
        """Replace the room's settings, deck, progress, matches and owner by ``room``'s and tell its
        processes (the event's number), if its last event is still number ``seq`` (so nothing
        decided since it was read is lost); None when it is not, or the room is gone."""

    async def notify(self, room_name: str, data: str) -> None:
        """Pass ``data`` to every process serving the room as it is, deciding and storing nothing."""

    async def heartbeat(self, lifetime: float) -> list[str]:
        """Say this process lives ``lifetime`` more seconds; returns the processes whose time ran out."""

    async def reap(self, process_id: str, now_ms: int) -> int:
        """Unseat every member a lapsed process had seated; returns how many."""

    async def depart(self) -> None:
        """This process stops (its seats are already unseated): forget it."""
