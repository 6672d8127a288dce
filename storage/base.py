"""The Storage interface every backend implements."""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Self

from .errors import JoinCodeTaken, StorageError, UnreadableRoom
from .keys import room_key
from .room import SerializedRoom
from .summary import RoomSummary, Unreadable, summarise

log = logging.getLogger("storage")

# The names of per-person lists are the server's own words ("watchlist"), never a user's.
_LIST_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def list_name(name: str) -> str:
    """``name`` if it may name a per-person list (it becomes part of file names and Redis keys)."""
    if not _LIST_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a list: lowercase letters, digits, _ and -, 40 at most")
    return name


class storage_errors:  # a function to its callers: ``with storage_errors(...)``
    """Turn any non-storage failure inside the block into a ``StorageError`` that chains it.

    A class, not a generator: every script call of a shared room passes through one, and a
    generator-based context manager cost as much as the rest of the call's own bookkeeping."""

    __slots__ = ("_operation", "_target")

    def __init__(self, operation: str, target: str) -> None:
        self._operation = operation
        self._target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: TracebackType | None) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, StorageError):
            raise StorageError(self._operation, self._target, f"{type(exc).__name__}: {exc}") from exc


class Storage(ABC):
    """Persistent rooms, addressed by room name (any spelling of the same canonical key).

    Backends are async context managers: ``async with create_storage(url) as storage: ...``.
    """

    def __init__(self) -> None:
        self._room_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # By location: every unreadable room met since open (reading it, or opening the storage).
        self._unreadable: dict[str, Unreadable] = {}

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

    async def free_bytes(self) -> int | None:
        """Room left on the medium rooms are stored on, in bytes; None when the backend cannot say."""
        return None

    @abstractmethod
    async def save_room(self, room: SerializedRoom) -> None:
        """Store the room, replacing any stored version with the same key. Backends that index join
        codes raise ``JoinCodeTaken`` (storing nothing) when another room has the room's code."""

    async def create_room(self, room: SerializedRoom) -> bool:
        """Store a new room unless one with its key is stored; False when one is (created meanwhile,
        perhaps by another process). Backends shared by several processes override this. Like
        ``save_room``, raises ``JoinCodeTaken`` (storing nothing) when another room has its join code."""
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

    async def room_of_join_code(self, code: str) -> str | None:
        """The name of the stored room whose join code is ``code``, if any. Backends keep an index;
        this default reads every room's summary."""
        for summary in await self.list_summaries():
            if summary.join_code == code:
                return summary.name
        return None

    async def give_join_code(self, room_name: str, code: str) -> str | None:
        """The stored room's join code: ``code``, stored now, when the room has none yet (one stored
        before codes existed). None when no such room is stored; ``JoinCodeTaken`` when another room
        has ``code``. Backends shared by several processes override this with one atomic step."""
        async with self.room_lock(room_name):
            room = await self.get_room(room_name)
            if room is None or room.join_code is not None:
                return None if room is None else room.join_code
            if await self.room_of_join_code(code) is not None:
                raise JoinCodeTaken("give_join_code", repr(room_name), code)
            room.join_code = code
            await self._save_locked(room)
            return code

    async def list_rooms(self) -> list[SerializedRoom]:
        """Every readable stored room; an unreadable one is skipped (and logged by the backend)."""
        rooms = []
        for name in await self.list_room_names():
            try:
                room = await self.get_room(name)
            except UnreadableRoom:
                continue
            if room is not None:
                rooms.append(room)
        return rooms

    async def list_summaries(self) -> list[RoomSummary]:
        """A summary of every readable stored room, for the host's tools. Backends make this cheaper
        than ``list_rooms``; this default reads every room (its size: its JSON form)."""
        return [summarise(room, len(room.to_json())) for room in await self.list_rooms()]

    async def check(self) -> list[Unreadable]:
        """Read every stored room; the unreadable ones. Raises ``StorageError`` when the backend
        itself fails (then nothing is known about the rooms)."""
        for name in await self.list_room_names():
            try:
                await self.get_room(name)
            except UnreadableRoom as exc:
                # Backends record what they raise; a third-party one may not.
                self._unreadable.setdefault(exc.location, _unreadable(exc))
        return self.unreadable_rooms()

    def unreadable_rooms(self) -> list[Unreadable]:
        """The unreadable rooms met so far, without reading anything (``check`` reads every room)."""
        return list(self._unreadable.values())

    def _unreadable_room(
        self, operation: str, target: str, reason: str, *, location: str, room_name: str | None
    ) -> UnreadableRoom:
        """Record an unreadable room; the error to raise for it."""
        error = UnreadableRoom(operation, target, reason, location=location, room_name=room_name)
        self._unreadable[location] = _unreadable(error)
        return error

    def _readable(self, location: str) -> None:
        """The room at ``location`` was written or deleted: whatever was wrong with it is gone."""
        self._unreadable.pop(location, None)

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


def _unreadable(error: UnreadableRoom) -> Unreadable:
    return Unreadable(error.location, error.reason, error.room_name)
