"""CPU-heavy work off the event loop: a few calls at a time, a bounded queue, and a share per client.

A password check (scrypt, about 16 MiB and 50 ms of CPU) or a QR code (20-100 ms of pure Python)
run on the event loop would hold up every member's rating for as long. Here they run in workers,
``workers`` at a time; at most ``queue`` more wait, and one client (a limits key, see
``server.limits.address_key``) has at most ``per_client`` calls waiting or running. A call beyond
either bound is refused at once with ``Busy``, before any work is done, so a flood costs nothing
but the refusal, and the memory it can take is ``workers`` calls' worth.

Threads suit work that releases the GIL (``hashlib.scrypt`` does: the loop keeps its pace beside
two running checks); pure-Python work holds the GIL and, in a thread, still slows the loop by its
switch interval (5 ms) for as long as it runs, so it goes to worker processes instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_process
import anyio.to_thread

from server.config import Settings

T = TypeVar("T")
Args = TypeVarTuple("Args")


class Busy(Exception):
    """A call refused without being run: the queue is full, or the client has its share in it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Offload:
    """Runs calls in worker threads or processes, within the bounds described in the module."""

    def __init__(self, workers: int, queue: int, per_client: int) -> None:
        self.workers = workers
        self.queue = queue
        self.per_client = per_client
        self._slots = anyio.Semaphore(workers)
        # anyio's own limiters, sized so that they never make a call wait: the slots above already
        # hold back all but ``workers`` calls (and the default thread limiter is shared with file I/O).
        self._threads = anyio.CapacityLimiter(workers)
        self._processes = anyio.CapacityLimiter(workers)
        self._waiting = 0
        self._held: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Offload:
        return cls(settings.cpu_workers, settings.cpu_queue, settings.cpu_queue_per_client)

    @property
    def waiting(self) -> int:
        """Calls admitted and waiting for a worker."""
        return self._waiting

    def held_by(self, client: str) -> int:
        """Calls of this client waiting or running."""
        return self._held.get(client, 0)

    async def run_in_thread(self, client: str, func: Callable[[*Args], T], *args: *Args) -> T:
        """``func(*args)`` in a worker thread, for work that releases the GIL; raises ``Busy``."""
        return await self._run(client, lambda: anyio.to_thread.run_sync(func, *args, limiter=self._threads))

    async def run_in_process(self, client: str, func: Callable[[*Args], T], *args: *Args) -> T:
        """``func(*args)`` in a worker process (``func`` and its arguments are pickled, so ``func``
        lives in a module that imports little); raises ``Busy``."""
        return await self._run(client, lambda: anyio.to_process.run_sync(func, *args, limiter=self._processes))

    async def _run(self, client: str, call: Callable[[], Awaitable[T]]) -> T:
        held = self._held.get(client, 0)
        if held >= self.per_client:
            raise Busy(f"{held} calls of this client are already waiting or running")
        if self._slots.value == 0 and self._waiting >= self.queue:
            raise Busy(f"{self._waiting} calls are already waiting")
        self._held[client] = held + 1
        try:
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                self._waiting += 1
                try:
                    await self._slots.acquire()
                finally:
                    self._waiting -= 1
            try:
                # anyio does not cancel a call once it runs: its share is given back when it ends.
                return await call()
            finally:
                self._slots.release()
        finally:
            left = self._held[client] - 1
            if left:
                self._held[client] = left
            else:
                del self._held[client]
