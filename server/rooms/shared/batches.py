"""Script calls made while a pipeline is on its way go together in the next one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError


@dataclass
@dataclass
class _Call:
    script: AsyncScript
    keys: list[str]
    args: list[str | int]
    done: anyio.Event
    reply: Any = None
    error: BaseException | None = None


class Batches:
    """Script calls made while a pipeline is on its way go together in the next one.

    A script call alone costs a round trip and most of the client's time in packing and parsing; a
    hundred members rating at once then queue behind each other. One pipeline at a time carries
    every call made meanwhile, so under load the calls batch themselves, and alone a call goes at
    once. Without ``run`` (a tool, a test), every call is sent on its own.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._queue: list[_Call] = []
        self._wake = anyio.Event()
        self._running = False

    async def call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        if not self._running:
            return await script(keys=keys, args=args)
        call = _Call(script, keys, args, anyio.Event())
        self._queue.append(call)
        self._wake.set()
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

    async def _send(self, batch: list[_Call]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for call in batch:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection: every call of the batch failed alike
            replies = [exc] * len(batch)
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted and lost its script cache
                try:
                    reply = await call.script(keys=call.keys, args=call.args)
                except Exception as exc:
                    reply = exc
            if isinstance(reply, Exception):
                call.error = reply
            else:
                call.reply = reply
            call.done.set()
