"""The process's one pub/sub connection to Redis."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError

from storage import StorageError
from storage.base import storage_errors
from storage.redis import PrimaryPool, read_subscribed

log = logging.getLogger("server.rooms.shared")


class Subscriber:
    """The process's one pub/sub connection: room channels in, ``on_event(channel, data)`` out.

    ``on_subscribed(channel)`` is called for every confirmed subscription, the first and those
    after a reconnection (when events may have been missed). The connection is re-made until
    ``run`` is cancelled; a control channel keeps it open while the process serves no room.

    With Sentinel, the connection is re-made when the primary moves: a demoted primary that
    reconnected as a replica would still pass on the events it replicates, but not those published
    while it was away, and nothing would say they were missed.

    Events of the channels ``hold`` names wait (see ``Batches``) until ``release`` delivers them
    (``confirmed``) or drops them and calls ``on_subscribed`` (``doubtful``: the room is read again).
    """

    RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
    PING_EVERY = 5.0
    CONFIRM_TIMEOUT = 3.0

    def __init__(
        self,
        client: Redis,
        control_channel: str,
        on_event: Callable[[str, str], None],
        on_subscribed: Callable[[str], None],
    ) -> None:
        self._client = client
        self._control = control_channel
        self._on_event = on_event
        self._on_subscribed = on_subscribed
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._confirmed: dict[str, anyio.Event] = {}
        self._held: dict[str, list[str]] = {}
        self._listening: anyio.CancelScope | None = None
        self._moved = anyio.Event()  # the primary moved: reconnect now, not after the delay
        self._failures = 0  # reconnections since the subscription last worked
        self.connected = anyio.Event()
        pool = client.connection_pool
        if isinstance(pool, PrimaryPool):
            pool.listeners.append(self._primary_moved)

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait for the confirmation: events published after it are delivered."""
        with anyio.move_on_after(self.CONFIRM_TIMEOUT):  # just started, or reconnecting
            await self.connected.wait()
        pubsub = self._pubsub
        if pubsub is None or not self.connected.is_set():
            raise StorageError("subscribe", channel, "not connected to Redis")
        self._channels.add(channel)
        confirmed = self._confirmed[channel] = anyio.Event()
        try:
            with storage_errors("subscribe", channel), anyio.fail_after(self.CONFIRM_TIMEOUT):
                await pubsub.subscribe(channel)
                await confirmed.wait()
        except (StorageError, TimeoutError) as exc:
            self._channels.discard(channel)
            raise StorageError("subscribe", channel, str(exc) or "no confirmation") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        if self._pubsub is not None:
            # On failure the next connection does not subscribe it again.
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    async def run(self) -> None:
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self._control, *self._channels)
                    self._pubsub = pubsub
                    with anyio.CancelScope() as listening:
                        self._listening = listening
                        await self._listen(pubsub)
                    raise RedisConnectionError("the Redis primary moved")  # listening was cancelled
            except (RedisError, OSError) as exc:
                if self._failures == 0:
                    log.error("lost the Redis subscription, reconnecting: %s", exc)
                delay = self.RECONNECT_DELAYS[min(self._failures, len(self.RECONNECT_DELAYS) - 1)]
                self._failures += 1
            finally:
                self._pubsub = self._listening = None
                self.connected = anyio.Event()
            with anyio.move_on_after(delay):
                await self._moved.wait()
            self._moved = anyio.Event()

    def _primary_moved(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
        self._moved.set()

    def hold(self, channels: Collection[str]) -> None:
        for channel in channels:
            self._held.setdefault(channel, [])

    def release(self, confirmed: Collection[str], doubtful: Collection[str]) -> None:
        for channel in confirmed:
            for data in self._held.pop(channel, []):
                self._on_event(channel, data)
        for channel in doubtful:
            self._held.pop(channel, None)
            if self.connected.is_set():  # else the subscription, when back, has the room read again
                self._on_subscribed(channel)

    async def _listen(self, pubsub: PubSub) -> None:
        """Deliver messages; a connection that stays silent through a ping is taken for dead (a
        network cut without a reset would otherwise leave this process deaf until it restarts)."""
        connection = pubsub.connection
        if connection is None:
            raise RedisConnectionError("the subscription has no connection")
        while True:
            messages = await self._read(connection)
            if not messages:
                await pubsub.ping()
                messages = await self._read(connection)
                if not messages:
                    raise RedisConnectionError("no answer to a ping on the subscription")
            for message in messages:
                if message[0] == "message":  # the one kind that is not rare, read here directly
                    self._event(message[1], message[2])
                else:  # redis-py keeps its book of the channels (what a reconnection subscribes)
                    self._confirmation(await pubsub.handle_message(message))

    async def _read(self, connection: Connection) -> list[Any]:
        """What arrives within PING_EVERY (every message already received, if any), else nothing."""
        with anyio.move_on_after(self.PING_EVERY):
            return await read_subscribed(connection)
        return []

    def _event(self, channel: str, data: str) -> None:
        held = self._held.get(channel)
        if held is None:
            self._on_event(channel, data)
        else:
            held.append(data)

    def _confirmation(self, message: dict[str, Any] | None) -> None:
        if message is None or message["type"] != "subscribe":
            return
        channel = message["channel"]
        if channel == self._control:
            self.connected.set()
            self._failures = 0
            return
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            confirmed.set()
        self._on_subscribed(channel)
