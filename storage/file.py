"""One JSON file per room in a private directory that one server process owns at a time.

Layout of the directory:

- ``<readable-id>.json``: a room (``storage.keys.readable_id`` of its key) but its deck, written
  atomically on every save. It starts with the room's summary (``{"summary": {...}, ...``), so a
  listing reads a few hundred bytes of each file, whatever the room holds;
- ``<readable-id>.<digest>.deck``: the room's deck (``mediaIds``, fixed at creation), a JSON array
  named by the digest of its content. Written once, before the first room file that refers to it
  (``"deck": {"digest", "size"}``), and removed once no room file does: a reader always finds the
  deck of the room file it read, and a save costs the same at 100 and at 100,000 films;
- ``.index.json``: ``{file name: room name}``, so startup and ``list_room_names`` need no room body;
- ``.lock``: flock'ed by the owning process, which writes its pid into it;
- ``.<name>.<random>.tmp``: a write in progress, or the remains of one a crash interrupted;
- ``.lists/<digest>.json``: one person's lists (``Storage.read_list``), by the digest of their
  identity, ``{"identity": ..., "lists": {name: {key: value}}}``, written atomically; a directory of
  its own, so nothing that looks at rooms ever sees it.

Room files of earlier versions (the deck inside, as ``mediaIds``) load as they are and are written
in this layout at their next save.

Opened ``read_only``, the storage takes no lock and writes nothing (no index repair, no sweeping, no
adoption of legacy files): the host's tools read a directory that a running server owns that way.
Every file is replaced atomically, so they see each room as of one of its saves.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import shutil
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from pydantic import TypeAdapter, ValidationError

from .atomic import TEMP_PREFIX, TEMP_SUFFIX, write_atomic
from .base import Storage, list_name, storage_errors
from .errors import StorageError
from .factory import file_path_from_url
from .join_codes import JoinCodeIndex
from .keys import DIGEST_LENGTH, key_digest, readable_id, room_key
from .room import SerializedRoom, deck_digest, deck_json, problems
from .summary import RoomSummary, summarise

logger = logging.getLogger(__name__)

ROOM_SUFFIX = ".json"
DECK_SUFFIX = ".deck"
INDEX_FILE = ".index.json"
LOCK_FILE = ".lock"
LISTS_DIRECTORY = ".lists"
# Every name readable_id can produce; other *.json files are legacy rooms or foreign files.
_ID = rf"(?:[a-z0-9-]+-)?[0-9a-f]{{{DIGEST_LENGTH}}}"
ROOM_FILE = re.compile(rf"{_ID}{re.escape(ROOM_SUFFIX)}")
DECK_FILE = re.compile(rf"({_ID})\.[0-9a-f]{{{DIGEST_LENGTH}}}{re.escape(DECK_SUFFIX)}")
_MAX_NAME_SHOWN = 80
# A reader that finds no deck for the room file it read retries: the room was saved meanwhile.
_READ_ATTEMPTS = 3
# A summary head is a few hundred bytes; anything longer is not one.
_HEAD_BYTES = 1024
_HEAD_START = b'{"summary":'

_DECK = TypeAdapter(list[str])


def room_file_name(room_name: str) -> str:
    """The file of a room: a function of its canonical key only, so any spelling finds the same file."""
    return readable_id(room_key(room_name)) + ROOM_SUFFIX


def deck_file_name(room_file: str, digest: str) -> str:
    return f"{room_file.removesuffix(ROOM_SUFFIX)}.{digest}{DECK_SUFFIX}"


@dataclass(frozen=True)
class _Loaded:
    room: SerializedRoom
    summary: RoomSummary


class FileStorage(Storage):
    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        super().__init__()
        # Made absolute once, so a later chdir cannot move the rooms.
        self._directory = directory.absolute()
        self._read_only = read_only
        self._lock_fd: int | None = None
        # True from a completed open() to close(); the lock alone is taken before the index is built.
        self._ready = False
        # file name -> display name of every stored room; the index file is its durable copy.
        self._names: dict[str, str] = {}
        # room file name -> its deck file, for the rooms that have one.
        self._decks: dict[str, str] = {}
        # Read only: room file name -> the legacy file holding it (writable storage adopts them).
        self._legacy: dict[str, Path] = {}
        self._index_lock = asyncio.Lock()
        self._index_changes = 0
        self._index_saved = 0
        # Built from the rooms' summaries when first needed (startup reads no room file it need not).
        self._join_codes: JoinCodeIndex | None = None
        self._join_codes_lock = asyncio.Lock()
        self._list_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    def from_url(cls, url: str) -> FileStorage:
        return cls(file_path_from_url(url))

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def read_only(self) -> bool:
        return self._read_only

    def room_path(self, room_name: str) -> Path:
        return self._directory / room_file_name(room_name)

    def deck_path(self, room_name: str) -> Path | None:
        """The deck file of a stored room, if it has one."""
        deck = self._decks.get(room_file_name(room_name))
        return None if deck is None else self._directory / deck

    @property
    def _index_path(self) -> Path:
        return self._directory / INDEX_FILE

    # Lifecycle.

    async def free_bytes(self) -> int:
        return shutil.disk_usage(self._directory).free

    async def healthy(self) -> bool:
        if not await super().healthy():
            return False
        if not os.access(self._directory, os.W_OK):
            logger.warning("health: storage directory %s is not writable", self._directory)
            return False
        return True

    async def open(self) -> None:
        if not self._ready and self._lock_fd is None:
            with storage_errors("open", str(self._directory)):
                await anyio.to_thread.run_sync(self._open_sync)

    async def close(self) -> None:
        self._ready = False
        self._release_lock()
        self._names, self._decks, self._legacy = {}, {}, {}
        self._join_codes = None

    def _open_sync(self) -> None:
        if self._read_only:
            if not self._directory.is_dir():
                raise StorageError("open", str(self._directory), "no such directory")
        else:
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

    def _require_writable(self, operation: str) -> None:
        self._require_open(operation)
        if self._read_only:
            raise StorageError(operation, str(self._directory), "storage is open read-only")

    # Startup: the index, checked against the directory without reading room bodies.

    def _reconcile(self) -> dict[str, str]:
        room_files, deck_files, other_files = self._scan()
        stored = self._read_index()
        names = {
            file_name: room_name
            for file_name, room_name in stored.items()
            if file_name in room_files and room_file_name(room_name) == file_name
        }
        # Only rooms the index does not vouch for (e.g. a crash between a room write and the index write).
        for file_name in sorted(room_files - names.keys()):
            loaded = self._read_unindexed(file_name)
            if loaded is not None:
                names[file_name] = loaded.room.room_name
        self._decks = self._match_decks(deck_files, names)
        for file_name in sorted(other_files):
            self._adopt_legacy(file_name, names)
        if names != stored and not self._read_only:
            write_atomic(self._index_path, _index_bytes(names))
        return names

    def _scan(self) -> tuple[set[str], list[tuple[str, str]], list[str]]:
        """Room file names, (deck, its room file) names and other ``*.json`` names; deletes the temp
        files of interrupted writes."""
        room_files: set[str] = set()
        deck_files: list[tuple[str, str]] = []
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
                elif deck := DECK_FILE.fullmatch(name):
                    deck_files.append((name, deck.group(1) + ROOM_SUFFIX))
                elif name.endswith(ROOM_SUFFIX) and not name.startswith("."):
                    other_files.append(name)
        # We hold the directory lock, so no live writer owns any of them.
        if not self._read_only:
            for path in temp_files:
                os.unlink(path)
        return room_files, deck_files, other_files

    def _match_decks(self, deck_files: list[tuple[str, str]], names: dict[str, str]) -> dict[str, str]:
        """Each room's deck file; decks no room file refers to (a crash between the writes of a
        save, or of a deletion) are deleted."""
        by_room: dict[str, list[str]] = {}
        for deck, room_file in deck_files:
            by_room.setdefault(room_file, []).append(deck)
        decks: dict[str, str] = {}
        for room_file, found in by_room.items():
            if room_file not in names:
                kept = []
            elif len(found) == 1:
                kept = found
            else:
                referred = self._deck_referred_to(room_file)
                kept = [deck for deck in found if deck == referred] if referred in found else found
            if kept:
                decks[room_file] = kept[0]
            if not self._read_only:
                for deck in set(found) - set(kept):
                    os.unlink(self._directory / deck)
        return decks

    def _deck_referred_to(self, room_file: str) -> str | None:
        try:
            digest = _deck_reference(json.loads((self._directory / room_file).read_bytes())["deck"])[0]
        except (OSError, ValueError, TypeError, KeyError):
            return None  # unreadable: its decks are kept, and the room is reported when read
        return deck_file_name(room_file, digest)

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

    def _read_unindexed(self, file_name: str) -> _Loaded | None:
        try:
            return self._load_sync(file_name, None)
        except StorageError as exc:
            logger.warning("ignoring room file %s: %s (left in place)", self._directory / file_name, exc.reason)
            return None

    def _adopt_legacy(self, file_name: str, names: dict[str, str]) -> None:
        """Move a room file of the original server (``<roomName>.json``) to its file name here."""
        path = self._directory / file_name
        try:
            room = _parse_room(_json_object(path.read_bytes()))
        except (OSError, ValueError) as exc:
            self._unreadable_room("open", str(path), str(exc), location=str(path), room_name=None)
            logger.warning("ignoring %s: %s (left in place)", path, exc)
            return
        target = room_file_name(room.room_name)
        target_path = self._directory / target
        # Also a corrupt file of that name: it stays for inspection, like any unreadable room.
        if target_path.exists():
            reason = f"holds room {room.room_name!r}, which is already stored in {target}"
            self._unreadable_room("open", str(path), reason, location=str(path), room_name=room.room_name)
            logger.warning("legacy room file %s %s; left in place", path, reason)
            return
        names[target] = room.room_name
        if self._read_only:
            self._legacy[target] = path
            return
        self._store_sync(target, room, _room_body(room), _head(room))
        # Removed rather than kept as a backup: it may hold the room password in clear text.
        path.unlink()
        logger.info("adopted legacy room file %s as %s", path, target)

    # Rooms.

    async def save_room(self, room: SerializedRoom) -> None:
        async with self.room_lock(room.room_name):
            await self._save_locked(room)

    async def _save_locked(self, room: SerializedRoom) -> None:
        self._require_writable("save_room")
        file_name = room_file_name(room.room_name)
        path = self._directory / file_name
        # Serialised here, in the event loop: a worker thread could see the room mid-mutation. The
        # deck is never changed in place, so its digest and (new) file are made in the thread.
        body, head = _room_body(room), _head(room)
        # Claimed before the write: a failed write leaves the code to a room that may not exist,
        # which finds nothing and costs a creation one more draw, never two rooms one code.
        (await self._codes()).claim(room.room_name, room.join_code, "save_room")
        # A save the caller stops waiting for still completes, index entry included.
        with anyio.CancelScope(shield=True):
            with storage_errors("save_room", _describe(room.room_name, path)):
                await anyio.to_thread.run_sync(self._store_sync, file_name, room, body, head)
            await self._set_index_entry(file_name, room.room_name)
        self._readable(str(path))

    def _store_sync(self, file_name: str, room: SerializedRoom, body: bytes, head: dict[str, Any]) -> None:
        """Write the room's deck (when new), then its room file (its summary ``head`` first); then
        drop the deck it replaced."""
        path = self._directory / file_name
        old_deck = self._decks.get(file_name)
        deck, deck_size = None, 0
        digest = room.deck_digest()
        if digest is not None and room.media_ids is not None:
            deck = deck_file_name(file_name, digest)
            deck_path = self._directory / deck
            if deck != old_deck or not deck_path.exists():
                write_atomic(deck_path, deck_json(room.media_ids))
            deck_size = deck_path.stat().st_size
            body = _with_deck_reference(body, digest, len(room.media_ids))
        write_atomic(path, _with_head(body, {**head, "deckBytes": deck_size}))
        if deck is None:
            self._decks.pop(file_name, None)
        else:
            self._decks[file_name] = deck
        if old_deck is not None and old_deck != deck:
            # After the room file that no longer refers to it is durable; a crash before this
            # leaves a deck that the next open() removes.
            (self._directory / old_deck).unlink(missing_ok=True)

    async def get_room(self, room_name: str) -> SerializedRoom | None:
        self._require_open("get_room")
        file_name = room_file_name(room_name)
        if file_name not in self._names:
            return None
        loaded = await self._load(file_name, room_name)
        return None if loaded is None else loaded.room

    async def delete_room(self, room_name: str) -> None:
        self._require_writable("delete_room")
        file_name = room_file_name(room_name)
        path = self._directory / file_name
        async with self.room_lock(room_name):
            with anyio.CancelScope(shield=True):
                with storage_errors("delete_room", _describe(room_name, path)):
                    await anyio.to_thread.run_sync(self._delete_sync, file_name)
                # The index write also fsyncs the directory, which makes the unlinks durable.
                await self._set_index_entry(file_name, None)
        if self._join_codes is not None:
            self._join_codes.release(room_name)
        self._readable(str(path))

    def _delete_sync(self, file_name: str) -> None:
        (self._directory / file_name).unlink(missing_ok=True)
        deck = self._decks.pop(file_name, None)
        if deck is not None:
            (self._directory / deck).unlink(missing_ok=True)

    async def has_room(self, room_name: str) -> bool:
        self._require_open("has_room")
        return room_file_name(room_name) in self._names

    async def room_of_join_code(self, code: str) -> str | None:
        self._require_open("room_of_join_code")
        return (await self._codes()).room_of(code)

    async def _codes(self) -> JoinCodeIndex:
        if self._join_codes is None:
            async with self._join_codes_lock:
                if self._join_codes is None:
                    summaries = await self.list_summaries()
                    self._join_codes = JoinCodeIndex(
                        (summary.join_code, summary.name) for summary in summaries if summary.join_code
                    )
        return self._join_codes

    async def list_room_names(self) -> list[str]:
        self._require_open("list_room_names")
        return list(self._names.values())

    async def list_rooms(self) -> list[SerializedRoom]:
        self._require_open("list_rooms")
        rooms = []
        for file_name, room_name in list(self._names.items()):
            try:
                loaded = await self._load(file_name, room_name)
            except StorageError as exc:
                logger.warning("list_rooms skips an unreadable room: %s", exc)
                continue
            if loaded is not None:
                rooms.append(loaded.room)
        return rooms

    async def list_summaries(self) -> list[RoomSummary]:
        """The head of each room file (its summary); only a room written before heads existed, or
        whose head is damaged, is read whole."""
        self._require_open("list_summaries")
        with storage_errors("list_summaries", str(self._directory)):
            return await anyio.to_thread.run_sync(self._summaries_sync, list(self._names.items()))

    def _summaries_sync(self, rooms: list[tuple[str, str]]) -> list[RoomSummary]:
        summaries = []
        for file_name, room_name in rooms:
            try:
                summary = self._read_head(file_name, room_name)
                if summary is None:
                    loaded = self._load_sync(file_name, room_name)
                    summary = None if loaded is None else loaded.summary
            except FileNotFoundError:
                continue  # deleted meanwhile
            except StorageError as exc:
                logger.warning("list_summaries skips an unreadable room: %s", exc)
                continue
            if summary is not None:
                summaries.append(summary)
        return summaries

    def _read_head(self, file_name: str, room_name: str) -> RoomSummary | None:
        """The summary a room file starts with, or None when it has none (or a damaged one)."""
        if file_name in self._legacy:
            return None
        with (self._directory / file_name).open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            start = file.read(_HEAD_BYTES)
        if not start.startswith(_HEAD_START):
            return None
        try:
            head, _ = json.JSONDecoder().raw_decode(start[len(_HEAD_START) :].decode("utf-8", "replace"))
            deck_bytes = head.pop("deckBytes")
            if type(deck_bytes) is not int:
                return None
            return RoomSummary.model_validate({**head, "name": room_name, "size": size + deck_bytes})
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    async def _load(self, file_name: str, room_name: str) -> _Loaded | None:
        with storage_errors("get_room", _describe(room_name, self._directory / file_name)):
            return await anyio.to_thread.run_sync(self._load_sync, file_name, room_name)

    def _load_sync(self, file_name: str, room_name: str | None) -> _Loaded | None:
        """The room in ``file_name`` with its deck, or None when the file is gone (deleted
        meanwhile, or by hand); an unreadable one raises (and is recorded)."""
        path = self._legacy.get(file_name, self._directory / file_name)
        try:
            for attempt in range(1, _READ_ATTEMPTS + 1):
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    return None
                data = _json_object(raw)
                data.pop("summary", None)
                try:
                    deck = self._read_deck(file_name, data)
                except _DeckGone as gone:
                    if attempt < _READ_ATTEMPTS:
                        continue  # saved meanwhile with a new deck: read the new room file
                    raise ValueError(f"its deck file {gone.name} is missing") from None
                room = _parse_room(data)
                if file_name not in self._legacy and room_file_name(room.room_name) != file_name:
                    raise ValueError(
                        f"it holds room {room.room_name!r}, whose file would be {room_file_name(room.room_name)}"
                    )
                break
        except (OSError, ValueError) as exc:
            raise self._unreadable_room(
                "get_room",
                str(path) if room_name is None else _describe(room_name, path),
                str(exc),
                location=str(path),
                room_name=room_name,
            ) from exc
        size = len(raw)
        if deck is not None:
            room.note_deck_digest(deck[0])
            size += deck[1]
        return _Loaded(room, summarise(room, size))

    def _read_deck(self, file_name: str, data: dict[str, Any]) -> tuple[str, int] | None:
        """Put the room's deck into ``data`` (as ``mediaIds``); its digest and size in bytes, or
        None for a room without one. Raises ``ValueError`` for a damaged deck, ``_DeckGone`` when
        the deck file is not there (replaced by a save since the room file was read)."""
        if "deck" not in data:
            return None
        digest, size = _deck_reference(data.pop("deck"))
        deck_path = self._directory / deck_file_name(file_name, digest)
        try:
            raw = deck_path.read_bytes()
        except FileNotFoundError:
            raise _DeckGone(deck_path.name) from None
        if deck_digest(raw) != digest:
            raise ValueError(f"its deck file {deck_path.name} does not match its digest (damaged)")
        try:
            ids = _DECK.validate_json(raw)
        except ValidationError:
            raise ValueError(f"its deck file {deck_path.name} is not a JSON array of ids") from None
        if len(ids) != size:
            raise ValueError(f"its deck file {deck_path.name} holds {len(ids)} films, not {size}")
        data["mediaIds"] = ids
        return digest, len(raw)

    # The index.

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
            raise DirectoryInUse(directory, holder) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _DeckGone(Exception):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


class DirectoryInUse(StorageError):
    """Another process (a running server) holds the directory's lock."""

    def __init__(self, directory: Path, pid: str) -> None:
        self.pid = pid
        super().__init__("open", str(directory), f"{directory} is in use by another MovieMatch process (pid {pid})")


def _room_body(room: SerializedRoom) -> bytes:
    return room.to_json(exclude={"media_ids"})


def _head(room: SerializedRoom) -> dict[str, Any]:
    """The summary a room file starts with (but the name, in the index, and the size, in the stat)."""
    summary = summarise(room, 0).model_dump(mode="json", by_alias=True, exclude={"name", "size"})
    return summary


def _with_head(body: bytes, head: dict[str, Any]) -> bytes:
    return _HEAD_START + json.dumps(head, separators=(",", ":")).encode() + b"," + body[1:]


def _with_deck_reference(body: bytes, digest: str, size: int) -> bytes:
    # The body is a JSON object with at least roomName: end it with the reference instead of "}".
    return body[:-1] + b',"deck":' + json.dumps({"digest": digest, "size": size}, separators=(",", ":")).encode() + b"}"


def _deck_reference(reference: object) -> tuple[str, int]:
    if not isinstance(reference, dict):
        raise ValueError("its deck reference is not an object")
    digest, size = reference.get("digest"), reference.get("size")
    if not (isinstance(digest, str) and re.fullmatch(rf"[0-9a-f]{{{DIGEST_LENGTH}}}", digest)):
        raise ValueError(f"its deck reference has no valid digest ({digest!r})")
    if type(size) is not int or size < 0:
        raise ValueError(f"its deck reference has no valid size ({size!r})")
    return digest, size


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a valid room file (not UTF-8: {exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a valid room file (not JSON: {exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a valid room file (a JSON {type(data).__name__}, not an object)")
    return data


def _parse_room(data: dict[str, Any]) -> SerializedRoom:
    try:
        return SerializedRoom.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"not a valid room file ({problems(exc)})") from None


def _index_bytes(names: dict[str, str]) -> bytes:
    # ASCII escapes keep any room name (even a lone surrogate) encodable; one entry per line for people.
    return json.dumps(names, indent=0, sort_keys=True).encode("ascii")


def _describe(room_name: str, path: Path) -> str:
    # Room names are unbounded; the file name already identifies the room completely.
    shown = room_name if len(room_name) <= _MAX_NAME_SHOWN else room_name[:_MAX_NAME_SHOWN] + "…"
    return f"room {shown!r} (file {path})"
