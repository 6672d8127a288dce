"""Script calls made while a pipeline is on its way go together in the next one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from storage.redis import Replication, run_commands

log = logging.getLogger("server.rooms.shared")


@dataclass
class _Call:
    script: AsyncScript
    keys: list[str]
    args: list[str | int]
    channel: str | None
    # Whether a reply says the script wrote something (a refusal writes nothing: nothing to confirm).
    wrote: Callable[[Any], bool]
    # Shared by the calls of one batch: they are answered together (one Event per call cost more
    # than the rest of a call's own work).
    done: anyio.Event
    reply: Any = None
    error: BaseException | None = None


class EventGate(Protocol):
    """Where the rooms' events arrive (the subscriber): those of changes on their way to the replicas
    wait there until the replicas confirm them."""

    def hold(self, channels: Collection[str]) -> None: ...

    def release(self, confirmed: Collection[str], doubtful: Collection[str]) -> None: ...


class Batches:
    """Script calls made while a pipeline is on its way go together in the next one.

    A script call alone costs a round trip and most of the client's time in packing and parsing; a
    hundred members rating at once then queue behind each other. One pipeline at a time carries
    every call made meanwhile, so under load the calls batch themselves, and alone a call goes at
    once. Without ``run`` (a tool, a test), every call is sent on its own.

    When ``replication`` requires replicas, each pipeline ends with a WAIT, and a call is answered
    only once they confirmed it: a call they did not confirm in time fails (``NotReplicated``), so
    its member is told the change could not be recorded. Its script has published the change's
    event already, though, and every process serving the room gets it at once. The ``gate`` (the
    subscriber) keeps this process's copy of those events until the WAIT's answer: confirmed, they
    are delivered (a member's own ``userProgress`` is thus a confirmed rating); not confirmed, they
    are dropped and the room read again, so this process shows what the primary holds. Members on
    other processes may have seen the change meanwhile: if the primary keeps it (it usually does:
    the replicas were only slow), everyone agrees, and its author's retry finds it done; if a
    failover loses it, every process reads its rooms again after following the failover and tells
    its members what changed (``userProgress`` back down, ``matchRemoved``).
    """

    def __init__(self, client: redis.asyncio.Redis, replication: Replication | None = None) -> None:
        self._client = client
        self._replication = replication or Replication()
        self.gate: EventGate | None = None
        self._queue: list[_Call] = []
        self._answered = anyio.Event()  # set once the queued calls are answered
        self._wake = anyio.Event()
        self._running = False
        self._unconfirmed = False  # the last WAIT fell short (logged once, until one succeeds)

    async def call(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[str | int],
        *,
        channel: str | None = None,
        wrote: Callable[[Any], bool] = lambda _: True,
    ) -> Any:
        """The script's reply; ``channel`` is where it publishes its event, if it does; ``wrote``
        tells from a reply whether the script changed anything."""
        if not self._running:
            return await self._replication.call(self._client, script, keys, args)
        if not self._queue:
            self._answered = anyio.Event()
            self._wake.set()
        call = _Call(script, keys, args, channel, wrote, self._answered)
        self._queue.append(call)
        await call.done.wait()
        if call.error is not None:
            raise call.error
        return call.reply

    async def run(self) -> None:
        self._running = True
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._queue:
                    batch, self._queue = self._queue, []
                    with anyio.CancelScope(shield=True):  # callers wait for their replies
                        await self._send(batch)
        finally:
            self._running = False
            for call in self._queue:
                call.error = RedisError("the server is stopping")
                call.done.set()
            self._queue = []

    async def _send(self, batch: list[_Call]) -> None:
        # One batch at a time (``run``): the gate holds at most one batch's channels.
        gate = self.gate if self._replication.replicas else None
        channels = {call.channel for call in batch if call.channel is not None}
        if gate is not None:
            gate.hold(channels)
        commands: list[tuple[str | int, ...]] = [
            ("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args) for call in batch
        ]
        wait = self._replication.wait_command()
        if wait is not None:
            commands.append(wait)
        waits = wait is not None
        try:
            replies = await run_commands(self._client, commands)
        except Exception as exc:  # the connection: every call of the batch failed alike
            waits, replies = False, [exc] * len(batch)
        unconfirmed: Exception | None = None
        if waits:
            try:
                self._replication.check(replies.pop())
            except RedisError as exc:
                unconfirmed = exc
                if not self._unconfirmed:
                    log.error("changes are refused until the replicas confirm them again: %s", exc)
            else:
                if self._unconfirmed:
                    log.warning("the replicas confirm changes again")
            self._unconfirmed = unconfirmed is not None
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted, or failed over, and lost its script cache
                try:
                    reply = await self._replication.call(self._client, call.script, call.keys, call.args)
                except Exception as exc:
                    reply = exc
            elif unconfirmed is not None and not isinstance(reply, Exception) and call.wrote(reply):
                reply = unconfirmed
            if isinstance(reply, Exception):
                call.error = reply
            else:
                call.reply = reply
        if gate is not None:
            doubtful = {call.channel for call in batch if call.channel is not None and call.error is not None}
            gate.release(channels - doubtful, doubtful)
        for done in {id(call.done): call.done for call in batch}.values():
            done.set()
