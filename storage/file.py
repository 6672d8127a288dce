"""One JSON file per room in a private directory that one server process owns at a time.

Layout of the directory:

- ``<readable-id>.json``: a room (``storage.keys.readable_id`` of its key), written atomically;
- ``.index.json``: ``{file name: room name}``, so startup and ``list_room_names`` need no room body;
- ``.lock``: flock'ed by the owning process, which writes its pid into it;
- ``.<name>.<random>.tmp``: a write in progress, or the remains of one a crash interrupted;
- ``.lists/<digest>.json``: one person's lists (``Storage.read_list``), by the digest of their
  identity, ``{"identity": ..., "lists": {name: {key: value}}}``, written atomically; a directory of
  its own, so nothing that looks at rooms ever sees it.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import logging
import os
import re
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

from .atomic import TEMP_PREFIX, TEMP_SUFFIX, write_atomic
from .base import Storage, list_name, storage_errors
from .errors import StorageError
from .factory import file_path_from_url
from .keys import DIGEST_LENGTH, key_digest, readable_id, room_key
from .room import SerializedRoom

logger = logging.getLogger(__name__)

ROOM_SUFFIX = ".json"
INDEX_FILE = ".index.json"
LOCK_FILE = ".lock"
LISTS_DIRECTORY = ".lists"
# Every name readable_id can produce; other *.json files are legacy rooms or foreign files.
ROOM_FILE = re.compile(rf"(?:[a-z0-9-]+-)?[0-9a-f]{{{DIGEST_LENGTH}}}{re.escape(ROOM_SUFFIX)}")
_MAX_PROBLEMS = 3
_MAX_NAME_SHOWN = 80


def room_file_name(room_name: str) -> str:
    """The file of a room: a function of its canonical key only, so any spelling finds the same file."""
    return readable_id(room_key(room_name)) + ROOM_SUFFIX


class FileStorage(Storage):
    def __init__(self, directory: Path) -> None:
        super().__init__()
        # Made absolute once, so a later chdir cannot move the rooms.
        self._directory = directory.absolute()
        self._lock_fd: int | None = None
        # True from a completed open() to close(); the lock alone is taken before the index is built.
        self._ready = False
        # file name -> display name of every stored room; the index file is its durable copy.
        self._names: dict[str, str] = {}
        self._index_lock = asyncio.Lock()
        self._index_changes = 0
        self._index_saved = 0
        self._list_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    def from_url(cls, url: str) -> FileStorage:
        return cls(file_path_from_url(url))

    @property
    def directory(self) -> Path:
        return self._directory

    def room_path(self, room_name: str) -> Path:
        return self._directory / room_file_name(room_name)

    @property
    def _index_path(self) -> Path:
        return self._directory / INDEX_FILE

    # Lifecycle.

    async def healthy(self) -> bool:
        if not await super().healthy():
            return False
        if not os.access(self._directory, os.W_OK):
            logger.warning("health: storage directory %s is not writable", self._directory)
            return False
        return True

    async def open(self) -> None:
        if self._lock_fd is None:
            with storage_errors("open", str(self._directory)):
                await anyio.to_thread.run_sync(self._open_sync)

    async def close(self) -> None:
        self._ready = False
        self._release_lock()
        self._names = {}

    def _open_sync(self) -> None:
        self._prepare_directory()
        # Set here rather than returned, so an open() cancelled meanwhile still leaves close() able to unlock.
        self._lock_fd = _lock_directory(self._directory)
        try:
            self._names = self._reconcile()
        except BaseException:
            self._release_lock()
            raise
        self._index_changes = self._index_saved = 0
        self._ready = True

    def _prepare_directory(self) -> None:
        directory = self._directory
        try:
            directory.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise StorageError("open", str(directory), "exists and is not a directory") from None
        else:
            # mkdir's mode is filtered by the umask; the rooms hold password hashes.
            directory.chmod(0o700)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StorageError("open", str(directory), f"directory is not writable by uid {os.getuid()}")

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _require_open(self, operation: str) -> None:
        if not self._ready:
            raise StorageError(operation, str(self._directory), "storage is not open (call open() first)")

    # Startup: the index, checked against the directory without reading room bodies.

    def _reconcile(self) -> dict[str, str]:
        room_files, other_files = self._scan()
        stored = self._read_index()
        names = {
            file_name: room_name
            for file_name, room_name in stored.items()
            if file_name in room_files and room_file_name(room_name) == file_name
        }
        # Only rooms the index does not vouch for (e.g. a crash between a room write and the index write).
        for file_name in sorted(room_files - names.keys()):
            room = self._read_unindexed(file_name)
            if room is not None:
                names[file_name] = room.room_name
        for file_name in sorted(other_files):
            self._adopt_legacy(file_name, names)
        if names != stored:
            write_atomic(self._index_path, _index_bytes(names))
        return names

    def _scan(self) -> tuple[set[str], list[str]]:
        """Room file names and other ``*.json`` names; deletes the temp files of interrupted writes."""
        room_files: set[str] = set()
        other_files: list[str] = []
        temp_files: list[str] = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                name = entry.name
                if not entry.is_file(follow_symlinks=False):
                    continue
                if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                    temp_files.append(entry.path)
                elif ROOM_FILE.fullmatch(name):
                    room_files.add(name)
                elif name.endswith(ROOM_SUFFIX) and not name.startswith("."):
                    other_files.append(name)
        # We hold the directory lock, so no live writer owns any of them.
        for path in temp_files:
            os.unlink(path)
        return room_files, other_files

    def _read_index(self) -> dict[str, str]:
        try:
            stored = json.loads(self._index_path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            problem = str(exc)
        else:
            if isinstance(stored, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in stored.items()):
                return stored
            problem = "not a mapping of file names to room names"
        # Only a cache of the room files: rebuild it rather than refuse to start.
        logger.warning("index %s is unreadable (%s); rebuilding it from the room files", self._index_path, problem)
        return {}

    def _read_unindexed(self, file_name: str) -> SerializedRoom | None:
        path = self._directory / file_name
        try:
            return _read_room(path)
        except (OSError, ValueError) as exc:
            logger.warning("ignoring room file %s: %s (left in place)", path, exc)
            return None

    def _adopt_legacy(self, file_name: str, names: dict[str, str]) -> None:
        """Move a room file of the original server (``<roomName>.json``) to its file name here."""
        path = self._directory / file_name
        try:
            room = _parse_room(path.read_bytes())
        except (OSError, ValueError) as exc:
            logger.warning("ignoring %s: %s (left in place)", path, exc)
            return
        target = room_file_name(room.room_name)
        target_path = self._directory / target
        # Also a corrupt file of that name: it stays for inspection, like any unreadable room.
        if target_path.exists():
            logger.warning(
                "legacy room file %s holds room %r, which is already stored in %s; left in place",
                path,
                room.room_name,
                target,
            )
            return
        write_atomic(target_path, room.to_json())
        names[target] = room.room_name
        # Removed rather than kept as a backup: it may hold the room password in clear text.
        path.unlink()
        logger.info("adopted legacy room file %s as %s", path, target)

    # Rooms.

    async def save_room(self, room: SerializedRoom) -> None:
        async with self.room_lock(room.room_name):
            await self._save_locked(room)

    async def _save_locked(self, room: SerializedRoom) -> None:
        self._require_open("save_room")
        file_name = room_file_name(room.room_name)
        path = self._directory / file_name
        # Serialised here, in the event loop: a worker thread could see the room mid-mutation.
        data = room.to_json()
        # A save the caller stops waiting for still completes, index entry included.
        with anyio.CancelScope(shield=True):
            with storage_errors("save_room", _describe(room.room_name, path)):
                await anyio.to_thread.run_sync(write_atomic, path, data)
            await self._set_index_entry(file_name, room.room_name)

    async def get_room(self, room_name: str) -> SerializedRoom | None:
        self._require_open("get_room")
        file_name = room_file_name(room_name)
        if file_name not in self._names:
            return None
        return await self._load(file_name, room_name)

    async def delete_room(self, room_name: str) -> None:
        self._require_open("delete_room")
        file_name = room_file_name(room_name)
        path = self._directory / file_name
        async with self.room_lock(room_name):
            with anyio.CancelScope(shield=True):
                with storage_errors("delete_room", _describe(room_name, path)):
                    await anyio.to_thread.run_sync(functools.partial(path.unlink, missing_ok=True))
                # The index write also fsyncs the directory, which makes the unlink durable.
                await self._set_index_entry(file_name, None)

    async def has_room(self, room_name: str) -> bool:
        self._require_open("has_room")
        return room_file_name(room_name) in self._names

    async def list_room_names(self) -> list[str]:
        self._require_open("list_room_names")
        return list(self._names.values())

    async def list_rooms(self) -> list[SerializedRoom]:
        self._require_open("list_rooms")
        rooms = []
        for file_name, room_name in list(self._names.items()):
            try:
                room = await self._load(file_name, room_name)
            except StorageError as exc:
                logger.warning("list_rooms skips an unreadable room: %s", exc)
                continue
            if room is not None:
                rooms.append(room)
        return rooms

    async def _load(self, file_name: str, room_name: str) -> SerializedRoom | None:
        path = self._directory / file_name
        with storage_errors("get_room", _describe(room_name, path)):
            return await anyio.to_thread.run_sync(_read_room_if_present, path)

    async def _set_index_entry(self, file_name: str, room_name: str | None) -> None:
        """Record a new, renamed or deleted room in the index; unchanged entries cost no write."""
        if self._names.get(file_name) == room_name:
            return
        if room_name is None:
            del self._names[file_name]
        else:
            self._names[file_name] = room_name
        self._index_changes += 1
        async with self._index_lock:
            # A write that started after our change already holds it (bursts of new rooms coalesce).
            if self._index_saved == self._index_changes:
                return
            changes = self._index_changes
            data = _index_bytes(self._names)
            with storage_errors("save_index", str(self._index_path)):
                await anyio.to_thread.run_sync(write_atomic, self._index_path, data)
            self._index_saved = changes

    # Per-person lists.

    def _lists_path(self, identity: str) -> Path:
        return self._directory / LISTS_DIRECTORY / f"{key_digest(identity)}{ROOM_SUFFIX}"

    async def read_list(self, identity: str, name: str) -> dict[str, str]:
        self._require_open("read_list")
        path = self._lists_path(identity)
        with storage_errors("read_list", str(path)):
            lists = await anyio.to_thread.run_sync(_read_lists, path, identity)
        return dict(lists.get(list_name(name), {}))

    async def change_list(
        self, identity: str, name: str, *, put: Mapping[str, str] | None = None, drop: Collection[str] = ()
    ) -> None:
        self._require_open("change_list")
        name = list_name(name)
        path = self._lists_path(identity)
        lock = self._list_locks.get(identity)
        if lock is None:
            lock = self._list_locks[identity] = asyncio.Lock()
        # Read, change and write under the person's lock: one process owns the directory, so no
        # other writer can come in between. Shielded like a room's save: a change the caller stops
        # waiting for still completes.
        async with lock:
            with anyio.CancelScope(shield=True), storage_errors("change_list", str(path)):
                await anyio.to_thread.run_sync(_change_lists, path, identity, name, dict(put or {}), list(drop))


def _read_lists(path: Path, identity: str) -> dict[str, dict[str, str]]:
    try:
        stored: Any = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    valid = (
        isinstance(stored, dict)
        and stored.get("identity") == identity
        and isinstance(stored.get("lists"), dict)
        and all(
            isinstance(entries, dict) and all(isinstance(value, str) for value in entries.values())
            for entries in stored["lists"].values()
        )
    )
    if not valid:
        raise ValueError(f"{path} is not the lists file of this identity")
    lists: dict[str, dict[str, str]] = stored["lists"]
    return lists


def _change_lists(path: Path, identity: str, name: str, put: dict[str, str], drop: list[str]) -> None:
    lists = _read_lists(path, identity)
    entries = lists.setdefault(name, {})
    entries.update(put)
    for key in drop:
        entries.pop(key, None)
    if not entries:
        del lists[name]
    path.parent.mkdir(mode=0o700, exist_ok=True)
    # ASCII escapes, as in the index: any key (even a lone surrogate) stays encodable.
    write_atomic(path, json.dumps({"identity": identity, "lists": lists}, sort_keys=True).encode("ascii"))


def _lock_directory(directory: Path) -> int:
    """An open, flock'ed ``.lock`` holding our pid; the kernel releases it when the process dies."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise StorageError(
                "open", str(directory), f"{directory} is in use by another MovieMatch process (pid {holder})"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_room(path: Path) -> SerializedRoom:
    room = _parse_room(path.read_bytes())
    if room_file_name(room.room_name) != path.name:
        raise ValueError(f"it holds room {room.room_name!r}, whose file would be {room_file_name(room.room_name)}")
    return room


def _read_room_if_present(path: Path) -> SerializedRoom | None:
    # Absent: deleted by a concurrent delete_room, or by hand.
    try:
        return _read_room(path)
    except FileNotFoundError:
        return None


def _parse_room(raw: bytes) -> SerializedRoom:
    try:
        return SerializedRoom.from_json(raw)
    except ValidationError as exc:
        # pydantic's own message quotes the input, which may hold a clear-text legacy password.
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'file'}: {error['msg']}" for error in errors[:_MAX_PROBLEMS]
        )
        raise ValueError(f"not a valid room file ({problems})") from None


def _index_bytes(names: dict[str, str]) -> bytes:
    # ASCII escapes keep any room name (even a lone surrogate) encodable; one entry per line for people.
    return json.dumps(names, indent=0, sort_keys=True).encode("ascii")


def _describe(room_name: str, path: Path) -> str:
    # Room names are unbounded; the file name already identifies the room completely.
    shown = room_name if len(room_name) <= _MAX_NAME_SHOWN else room_name[:_MAX_NAME_SHOWN] + "…"
    return f"room {shown!r} (file {path})"
