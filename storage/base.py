"""The Storage interface every backend implements."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from .errors import StorageError
from .keys import room_key
from .room import SerializedRoom

log = logging.getLogger("storage")

# The names of per-person lists are the server's own words ("watchlist"), never a user's.
_LIST_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def list_name(name: str) -> str:
    """``name`` if it may name a per-person list (it becomes part of file names and Redis keys)."""
    if not _LIST_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a list: lowercase letters, digits, _ and -, 40 at most")
    return name


@contextmanager
def storage_errors(operation: str, target: str) -> Iterator[None]:
    """Turn any non-storage failure inside the block into a ``StorageError`` that chains it."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(operation, target, f"{type(exc).__name__}: {exc}") from exc


class Storage(ABC):
    """Persistent rooms, addressed by room name (any spelling of the same canonical key).

    Backends are async context managers: ``async with create_storage(url) as storage: ...``.
    """

    def __init__(self) -> None:
        self._room_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    def from_url(cls, url: str) -> Storage:
        """Build a backend from its URL; third-party backends override this."""
        raise NotImplementedError(f"{cls.__name__} cannot be created from a URL")

    async def open(self) -> None:  # noqa: B027 (optional hook: most backends need no setup)
        """Acquire resources (directories, locks, connections); idempotent."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release resources; idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def healthy(self) -> bool:
        """Whether the backend can be used now: by default, whether it answers a look-up."""
        try:
            await self.has_room("health check")
        except StorageError as exc:
            log.warning("health: storage unavailable: %s", exc)
            return False
        return True

    @abstractmethod
    async def save_room(self, room: SerializedRoom) -> None:
        """Store the room, replacing any stored version with the same key."""

    async def create_room(self, room: SerializedRoom) -> bool:
        """Store a new room unless one with its key is stored; False when one is (created meanwhile,
        perhaps by another process). Backends shared by several processes override this."""
        async with self.room_lock(room.room_name):
            if await self.has_room(room.room_name):
                return False
            await self._save_locked(room)
            return True

    @abstractmethod
    async def get_room(self, room_name: str) -> SerializedRoom | None:
        """The stored room, or None when there is none."""

    @abstractmethod
    async def delete_room(self, room_name: str) -> None:
        """Remove the room; deleting an absent room is not an error."""

    @abstractmethod
    async def has_room(self, room_name: str) -> bool: ...

    @abstractmethod
    async def list_room_names(self) -> list[str]:
        """Display names of all stored rooms, read without loading any room body."""

    async def list_rooms(self) -> list[SerializedRoom]:
        """Every readable stored room; an unreadable one is skipped (and logged by the backend)."""
        rooms = []
        for name in await self.list_room_names():
            try:
                room = await self.get_room(name)
            except StorageError:
                continue
            if room is not None:
                rooms.append(room)
        return rooms

    # -- per-person lists ---------------------------------------------------------------------------
    #
    # Small keyed lists that belong to a person (an identity, ``server.identity``) rather than to a
    # room: a watchlist, say. They are kept apart from rooms (no room operation reads or changes
    # them), survive restarts as rooms do, and are the same on every process sharing the backend.
    # A backend written before they existed keeps serving rooms; these two then raise StorageError.

    async def read_list(self, identity: str, name: str) -> dict[str, str]:
        """The entries of ``identity``'s list ``name``, key -> value; empty when there are none."""
        raise StorageError("read_list", identity, f"{type(self).__name__} keeps no per-person lists")

    async def change_list(
        self, identity: str, name: str, *, put: Mapping[str, str] | None = None, drop: Collection[str] = ()
    ) -> None:
        """Set the entries of ``put`` and remove the keys of ``drop`` (absent ones are no error), as
        one change: concurrent changes to other entries of the list are never lost."""
        raise StorageError("change_list", identity, f"{type(self).__name__} keeps no per-person lists")

    def room_lock(self, room_name: str) -> asyncio.Lock:
        """The in-process lock serialising writes of one room."""
        key = room_key(room_name)
        lock = self._room_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._room_locks[key] = lock
        return lock

    async def _save_locked(self, room: SerializedRoom) -> None:
        """Save while the caller already holds the room's lock (backends whose save takes it)."""
        await self.save_room(room)
