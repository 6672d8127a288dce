"""A stand-in for Redis in this process: shared rooms decided with the Python decisions.

``MemoryHub`` is what several "processes" (apps in one event loop) share in place of a Redis server:
the stored rooms (a ``MemoryStorage``), who is connected where, event numbers, heartbeats and the
channels. Each ``MemoryLive`` is one process's ``Live`` on it. Events are published as the JSON the
Lua scripts publish and delivered asynchronously, in order, as Redis delivers them; a subscription
can be cut and restored, to test what happens when events are missed.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio

from storage import MemoryStorage, RatingValue, SerializedRoom, room_key

from ..decisions import (
    Actor,
    JoinRequest,
    apply_event,
    decide_delete,
    decide_join,
    decide_leave,
    decide_member_action,
    decide_pick,
    decide_rate,
    decide_undo,
    is_new_match,
)
from ..events import Deleted, Event, Presence, Redealt
from ..rules import Ending, Refusal
from .live import LiveRoom, OnEvent, OnSubscribed, RateOutcome


class MemoryHub:
    def __init__(self, storage: MemoryStorage, clock: Callable[[], float] = anyio.current_time) -> None:
        self.storage = storage
        self.online: dict[str, dict[str, Presence]] = {}
        self.seq: dict[str, int] = {}
        self.deadlines: dict[str, float] = {}
        self.process_rooms: dict[str, set[str]] = {}
        self.subscriptions: weakref.WeakSet[MemorySubscription] = weakref.WeakSet()
        self._clock = clock
        self._locks: dict[str, anyio.Lock] = {}

    def now(self) -> float:
        return self._clock()

    @asynccontextmanager
    async def deciding(self, room_name: str) -> AsyncIterator[None]:
        """One change of a room at a time, as Redis runs one script at a time."""
        lock = self._locks.setdefault(room_key(room_name), anyio.Lock())
        async with lock:
            yield

    def publish(self, channel: str, data: str) -> None:
        for subscription in list(self.subscriptions):
            subscription.deliver(channel, data)


class MemorySubscription:
    """A ``Subscription`` to the hub's channels. ``cut`` drops the connection (events are missed
    until ``restore``, which confirms every subscription again, as a Redis reconnection does);
    ``miss`` loses events silently."""

    def __init__(self, hub: MemoryHub, on_event: OnEvent, on_subscribed: OnSubscribed) -> None:
        self._on_event = on_event
        self._on_subscribed = on_subscribed
        self._channels: set[str] = set()
        self._connected = anyio.Event()
        self._inbox: deque[tuple[str, str]] = deque()
        self._arrived = anyio.Event()
        self._missing = 0
        hub.subscriptions.add(self)

    @property
    def connected(self) -> anyio.Event:
        return self._connected

    def deliver(self, channel: str, data: str) -> None:
        if self._connected.is_set() and channel in self._channels:
            if self._missing:
                self._missing -= 1
                return
            self._inbox.append((channel, data))
            self._arrived.set()

    def miss(self, count: int) -> None:
        """Lose the next ``count`` events without noticing (only a gap in the numbers shows it)."""
        self._missing += count

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._on_subscribed(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    def cut(self) -> None:
        self._connected = anyio.Event()

    def restore(self) -> None:
        self._connected.set()
        for channel in list(self._channels):
            self._on_subscribed(channel)

    async def run(self) -> None:
        self._connected.set()
        while True:
            await self._arrived.wait()
            self._arrived = anyio.Event()
            while self._inbox:
                self._on_event(*self._inbox.popleft())


class MemoryLive:
    """``Live`` on a ``MemoryHub``, for the process ``process_id``: each operation decides with the
    Python decisions, under the room's lock, as a Redis script runs alone."""

    def __init__(self, hub: MemoryHub, process_id: str) -> None:
        self.hub = hub
        self.process_id = process_id
        self.subscriptions: list[MemorySubscription] = []

    def channel(self, room_name: str) -> str:
        return f"events:{room_key(room_name)}"

    def subscription(self, on_event: OnEvent, on_subscribed: OnSubscribed) -> MemorySubscription:
        subscription = MemorySubscription(self.hub, on_event, on_subscribed)
        self.subscriptions.append(subscription)
        return subscription

    async def run(self) -> None:
        await anyio.sleep_forever()

    def _online(self, room_name: str) -> dict[str, Presence]:
        return self.hub.online.setdefault(room_key(room_name), {})

    async def read(self, room_name: str) -> LiveRoom | None:
        async with self.hub.deciding(room_name):
            state = await self.hub.storage.get_room(room_name)
            if state is None:
                return None
            online = {name: seat.model_dump(mode="json") for name, seat in self._online(room_name).items()}
            return LiveRoom(state, online, self.hub.seq.get(room_key(room_name), 0))

    async def _decide(
        self, room_name: str, decide: Callable[[SerializedRoom, dict[str, Presence]], Event | Refusal | None]
    ) -> int | Refusal | None:
        """Decide on the stored room; apply, store and publish the event. Returns its number, the
        refusal, or None (nothing to do, or no such room)."""
        async with self.hub.deciding(room_name):
            state = await self.hub.storage.get_room(room_name)
            if state is None:
                return Refusal.NO_ROOM
            online = self._online(room_name)
            decided = decide(state, online)
            if decided is None or isinstance(decided, Refusal):
                return decided
            apply_event(state, online, decided)
            if isinstance(decided, Deleted):
                await self.hub.storage.delete_room(room_name)
                self.hub.online.pop(room_key(room_name), None)
            else:
                await self.hub.storage.save_room(state)
            key = room_key(room_name)
            seq = self.hub.seq[key] = self.hub.seq.get(key, 0) + 1
            self.hub.publish(self.channel(room_name), decided.model_copy(update={"seq": seq}).model_dump_json())
            return seq

    async def join(self, room_name: str, request: JoinRequest) -> int | Refusal:
        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | Refusal:
            return decide_join(state, online, replace(request, process=self.process_id))

        outcome = await self._decide(room_name, decide)
        if isinstance(outcome, int):
            self.hub.process_rooms.setdefault(self.process_id, set()).add(room_name)
        assert outcome is not None  # noqa: S101 (a join is always decided)
        return outcome

    async def leave(
        self, room_name: str, name: str, seat: str, *, permanent: bool, room_type: str, now_ms: int
    ) -> int | None:
        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | None:
            return decide_leave(state, online, name=name, seat=seat, permanent=permanent, now=now_ms)

        outcome = await self._decide(room_name, decide)
        return outcome if isinstance(outcome, int) else None

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
    ) -> RateOutcome | Refusal:
        new_match = False

        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | Refusal:
            nonlocal new_match
            decided = decide_rate(state, name=name, media_id=media_id, rating=rating, now=at_ms)
            new_match = not isinstance(decided, Refusal) and is_new_match(state, decided)
            return decided

        outcome = await self._decide(room_name, decide)
        return RateOutcome(outcome, new_match) if isinstance(outcome, int) else outcome or Refusal.NO_ROOM

    async def undo(self, room_name: str, name: str, media_id: str, *, room_type: str, threshold: int) -> int | Refusal:
        outcome = await self._decide(room_name, lambda state, _: decide_undo(state, name=name, media_id=media_id))
        return outcome or Refusal.NO_ROOM

    async def manage(
        self, room_name: str, *, actor: Actor, action: str, name: str, code_hash: str, owner: str, now_ms: int
    ) -> int | Refusal:
        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | Refusal:
            return decide_member_action(state, online, state.owner or owner, actor, action, name, code_hash, now_ms)

        return await self._decide(room_name, decide) or Refusal.NO_ROOM

    async def pick(self, room_name: str, *, actor: Actor, media_id: str, owner: str, now_ms: int) -> int | Refusal:
        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | Refusal:
            return decide_pick(state, online, owner=state.owner or owner, actor=actor, media_id=media_id, now=now_ms)

        return await self._decide(room_name, decide) or Refusal.NO_ROOM

    async def delete(self, room_name: str, *, actor: Actor, owner: str) -> int | Refusal:
        def decide(state: SerializedRoom, online: dict[str, Presence]) -> Event | Refusal:
            refusal = decide_delete(state, online, owner=state.owner or owner, actor=actor)
            return Deleted() if refusal is None else refusal

        return await self._decide(room_name, decide) or Refusal.NO_ROOM

    async def replace(self, room_name: str, room: SerializedRoom, *, seq: int) -> int | None:
        key = room_key(room_name)
        async with self.hub.deciding(room_name):
            stored = await self.hub.storage.get_room(room_name)
            if stored is None or self.hub.seq.get(key, 0) != seq or stored.join_code != room.join_code:
                return None
            # Nothing else changed since ``seq`` (every change is numbered, but for a join code given,
            # which is compared): the room can be stored whole.
            await self.hub.storage.save_room(room)
            seq = self.hub.seq[key] = seq + 1
            self.hub.publish(self.channel(room_name), Redealt(seq=seq).model_dump_json())
            return seq

    async def notify(self, room_name: str, data: str) -> None:
        self.hub.publish(self.channel(room_name), data)

    async def heartbeat(self, lifetime: float) -> list[str]:
        now = self.hub.now()
        self.hub.deadlines[self.process_id] = now + lifetime
        lapsed = (process for process, deadline in self.hub.deadlines.items() if deadline <= now)
        return [process for process in lapsed if process != self.process_id]

    async def reap(self, process_id: str, now_ms: int) -> int:
        unseated = 0
        for room_name in sorted(self.hub.process_rooms.pop(process_id, set())):
            for name, presence in list(self._online(room_name).items()):
                for seat, process in list(presence.seats.items()):
                    if process == process_id:
                        await self.leave(room_name, name, seat, permanent=False, room_type="", now_ms=now_ms)
                        unseated += 1
        self.hub.deadlines.pop(process_id, None)
        return unseated

    async def depart(self) -> None:
        await self.reap(self.process_id, 0)
