"""How the host's commands open storage, and the one way they delete a room.

Reading commands (list, show, export, check, the source of a migration) open a file directory
read-only: no lock, no writes, so they work beside a running server and never stop one from
starting. Writing commands (delete, import, the destination of a migration) take the directory's
lock like a server, so on a directory a running server owns they are refused with one message
naming it: its rooms are in its memory and it saves them over anything written behind its back.
Redis rooms are shared live between processes by design, so every command works on them while
servers run; a deletion is published so that they drop the room.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.config import mask_secrets
from server.identity import HOST
from server.rooms.decisions import Actor
from server.rooms.rules import Refusal
from server.rooms.shared.redis import RedisLive
from storage import Storage, StorageError
from storage.file import DirectoryInUse, FileStorage
from storage.redis import RedisStorage


class CommandError(Exception):
    """A command cannot do what it was asked: the message for the host, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        self.status = status
        super().__init__(message)


@asynccontextmanager
async def reading(storage: Storage, url: str) -> AsyncIterator[Storage]:
    """``storage`` open for reading (a file directory read-only)."""
    if isinstance(storage, FileStorage) and not storage.read_only:
        storage = FileStorage(storage.directory, read_only=True)
    await _open(storage, url)
    try:
        yield storage
    finally:
        await storage.close()


@asynccontextmanager
async def writing(storage: Storage, url: str) -> AsyncIterator[Storage]:
    """``storage`` open for writing; a file directory a running server owns is refused."""
    try:
        await storage.open()
    except DirectoryInUse as exc:
        raise CommandError(
            f"{exc.target} is in use by a running MovieMatch server (pid {exc.pid}): stop it first to "
            "delete, import or migrate rooms there (rooms list, rooms show, export and storage check "
            "work while it runs)"
        ) from exc
    except StorageError as exc:
        raise _unavailable(url, exc) from exc
    try:
        yield storage
    finally:
        await storage.close()


async def _open(storage: Storage, url: str) -> None:
    try:
        await storage.open()
    except StorageError as exc:
        raise _unavailable(url, exc) from exc


def _unavailable(url: str, exc: StorageError) -> CommandError:
    return CommandError(mask_secrets(f"storage {url} cannot be opened: {exc.reason}", url))


async def delete_room(storage: Storage, room_name: str) -> bool:
    """Delete a stored room; False when there is none. On Redis the deletion is published, so every
    server process serving the room drops it and tells its members."""
    if isinstance(storage, RedisStorage):
        live = RedisLive(storage, f"moviematch-command-{secrets.token_hex(4)}")
        deleted = await live.delete(room_name, actor=Actor(identity=HOST, skeleton=""), owner="")
        return not isinstance(deleted, Refusal)
    if not await storage.has_room(room_name):
        return False
    await storage.delete_room(room_name)
    return True
