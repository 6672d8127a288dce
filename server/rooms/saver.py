"""Debounced room saves: one scheduler per process, a trailing delay and a maximum wait.

A room changed at times t1..tn is written at ``min(tn + delay, t1 + max_wait)``: a burst of
ratings costs one write, a steady stream still reaches storage every ``max_wait`` seconds, and two
writes of one room are at least ``delay`` apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import anyio

from storage import SerializedRoom, Storage, StorageError

log = logging.getLogger("server.saver")

RETRY_AFTER_FAILURE = 2.0


@dataclass
class _Pending:
    first: float
    last: float


class PendingSaves:
    """The pure core: which rooms are due when. Times are plain floats from any clock."""

    def __init__(self, delay: float, max_wait: float) -> None:
        self.delay = delay
        self.max_wait = max_wait
        self._pending: dict[str, _Pending] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def mark(self, key: str, now: float) -> bool:
        """Record a change; True when the room was not pending (only then can a deadline move earlier:
        a further change to a pending room never brings its write forward)."""
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = _Pending(now, now)
            return True
        entry.last = now
        return False

    def deadline(self, key: str) -> float:
        entry = self._pending[key]
        return min(entry.last + self.delay, entry.first + self.max_wait)

    def next_deadline(self) -> float | None:
        return min((self.deadline(key) for key in self._pending), default=None)

    def due(self, now: float) -> list[str]:
        return [key for key in self._pending if self.deadline(key) <= now]

    def take(self, keys: Iterable[str] | None = None) -> list[str]:
        """Remove and return these keys (all when None); changes made after this mark them again."""
        taken = list(self._pending) if keys is None else [key for key in keys if key in self._pending]
        for key in taken:
            del self._pending[key]
        return taken

    def retry_at(self, key: str, when: float) -> None:
        """Keep a failed room pending, due again at ``when`` (unless already re-marked)."""
        self._pending.setdefault(key, _Pending(when - self.max_wait, when - self.delay))


class SaveObserver(Protocol):
    """Told about every save attempt: metrics time them, the registry tells rooms about outages."""

    def save_succeeded(self, key: str, seconds: float) -> None: ...

    def save_failed(self, key: str, error: StorageError, *, outage_started: bool) -> None:
        """``outage_started``: the first failure of this room since its last successful save."""


class Saver:
    """Drives ``PendingSaves`` with anyio's clock; ``run`` is the one scheduler task."""

    def __init__(
        self,
        storage: Storage,
        snapshot: Callable[[str], SerializedRoom | None],
        *,
        delay: float,
        max_wait: float,
        clock: Callable[[], float] = anyio.current_time,
        observer: SaveObserver | None = None,
    ) -> None:
        self.storage = storage
        self._snapshot = snapshot
        self._observer = observer
        self._pending = PendingSaves(delay, max_wait)
        self._clock = clock
        self._wake = anyio.Event()
        self._failing: set[str] = set()

    def mark_dirty(self, key: str) -> None:
        if self._pending.mark(key, self._clock()):
            self._wake.set()  # every rating waking the scheduler would cost a task switch each

    def is_dirty(self, key: str) -> bool:
        return key in self._pending

    @property
    def failing(self) -> bool:
        """Some room's last save failed (and is being retried)."""
        return bool(self._failing)

    def forget(self, key: str) -> None:
        """The room was deleted: drop its unsaved changes."""
        self._pending.take([key])
        self._failing.discard(key)

    async def run(self) -> None:
        while True:
            deadline = self._pending.next_deadline()
            self._wake = anyio.Event()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = deadline - self._clock()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                continue
            for key in self._pending.take(self._pending.due(self._clock())):
                await self._save(key)

    async def flush(self, keys: Iterable[str] | None = None) -> list[str]:
        """Save the pending rooms now (all, or these); returns the keys that could not be saved."""
        failed = []
        for key in self._pending.take(keys):
            if not await self._save(key):
                failed.append(key)
        return failed

    async def _save(self, key: str) -> bool:
        room = self._snapshot(key)
        if room is None:
            return True
        # Shielded: cancelling the scheduler (shutdown) must never abandon a save half-way.
        with anyio.CancelScope(shield=True):
            started = self._clock()
            try:
                await self.storage.save_room(room)
            except StorageError as exc:
                outage_started = key not in self._failing
                if outage_started:
                    log.error(
                        "could not save room %r, will retry: %s", room.room_name, exc, extra={"room": room.room_name}
                    )
                self._failing.add(key)
                self._pending.retry_at(key, self._clock() + RETRY_AFTER_FAILURE)
                if self._observer is not None:
                    self._observer.save_failed(key, exc, outage_started=outage_started)
                return False
        if self._observer is not None:
            self._observer.save_succeeded(key, self._clock() - started)
        if key in self._failing:
            self._failing.discard(key)
            log.info("room %r saved again", room.room_name)
        return True
