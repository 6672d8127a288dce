"""``moviematch export``, ``import`` and ``storage migrate``: every room, as JSON lines or into
another backend.

An export is one room per line, each the room's JSON form in the current schema version with its
deck, so it is complete and any later version can import it (older versions' lines are upgraded on
import like any stored room). Rooms are read and written one at a time: memory stays that of one room.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TypeVar

from tqdm import tqdm

from storage import SerializedRoom, Storage, room_key
from storage.atomic import replacing
from storage.errors import JoinCodeTaken, UnreadableRoom
from storage.room import problems

from .access import CommandError, delete_room
from .rooms import printable

T = TypeVar("T")
# Names listed in a message before "and N more".
_SHOWN = 10


def progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """A progress bar on stderr for runs longer than a second, and only on a terminal."""
    yield from tqdm(items, total=total, desc=what, unit=" rooms", file=sys.stderr, delay=1.0, disable=None, leave=False)


def listed(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(printable(name) for name in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


async def export(storage: Storage, to: Path | None, out: IO[str]) -> None:
    names = await storage.list_room_names()
    if to is None:
        # The bytes themselves where there are any: a terminal's encoding must not refuse a name.
        binary = getattr(out, "buffer", None)
        await _export_to(storage, names, binary.write if binary is not None else lambda line: out.write(line.decode()))
    else:
        try:
            with replacing(to) as file:
                exported = await _export_to(storage, names, file.write)
        except OSError as exc:
            raise CommandError(f"cannot write {to}: {exc.strerror}") from exc
        out.write(f"exported {exported} room(s) to {to}\n")
    unreadable = storage.unreadable_rooms()
    if unreadable:
        raise CommandError(
            f"{len(unreadable)} room(s) could not be read and are not in the export: see `moviematch storage check`"
        )


async def _export_to(storage: Storage, names: list[str], write: Callable[[bytes], object]) -> int:
    exported = 0
    for name in progress(names, len(names), "export"):
        try:
            room = await storage.get_room(name)
        except UnreadableRoom:
            continue
        if room is not None:  # else deleted meanwhile
            write(room.to_json() + b"\n")
            exported += 1
    return exported


def read_export(path: Path) -> Iterator[tuple[int, SerializedRoom]]:
    """(line number, room) of every room in an export; a line that is not a room is a CommandError."""
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, SerializedRoom.from_json(line)
                except ValueError as exc:
                    raise CommandError(f"{path}, line {number}: not a room ({problems(exc, limit=1)})") from exc
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc


async def import_rooms(storage: Storage, path: Path, *, replace: bool, out: IO[str]) -> None:
    """Every room of an export into ``storage``. The whole file is checked first (each line a
    room, no room twice, none stored already unless ``replace``), so a refused import writes nothing."""
    names: dict[str, str] = {}
    for number, room in read_export(path):
        if room.room_key in names:
            raise CommandError(f"{path}, line {number}: room {printable(room.room_name)} is in the file twice")
        names[room.room_key] = room.room_name
    stored = [name for name in names.values() if await storage.has_room(name)]
    if stored and not replace:
        raise CommandError(f"already stored (use --replace to overwrite them): {listed(stored)}")
    for _, room in progress(read_export(path), len(names), "import"):
        await put(storage, room, replace=replace)
    replaced = f" ({len(stored)} replaced)" if stored else ""
    out.write(f"imported {len(names)} room(s) from {path}{replaced}\n")


async def put(storage: Storage, room: SerializedRoom, *, replace: bool) -> None:
    """Store a room the command was given; with ``replace`` an existing one is deleted first (on
    Redis, so that running servers drop their copy)."""
    if replace:
        await delete_room(storage, room.room_name)
    try:
        created = await storage.create_room(room)
    except JoinCodeTaken:
        # Another room there has its code: it is given a new one when next opened.
        created = await storage.create_room(room.model_copy(update={"join_code": None}))
    if not created:
        raise CommandError(f"room {printable(room.room_name)} was created meanwhile; nothing was overwritten")


async def migrate(source: Storage, target: Storage, *, replace: bool, out: IO[str]) -> None:
    """Copy every room, then read every copy back and compare it with the original's digest."""
    names = await source.list_room_names()
    present = [name for name in names if await target.has_room(name)]
    if present and not replace:
        raise CommandError(f"the destination already holds (use --replace to overwrite them): {listed(present)}")
    copied: dict[str, str] = {}
    for name in progress(names, len(names), "copy"):
        try:
            room = await source.get_room(name)
        except UnreadableRoom:
            continue
        if room is not None:
            await put(target, room, replace=replace)
            copied[room.room_name] = room.digest()
    differing = await differing_copies(target, copied)
    in_target = {room_key(name) for name in await target.list_room_names()}
    missing = [name for name in copied if room_key(name) not in in_target]
    unreadable = source.unreadable_rooms()
    out.write(
        f"copied {len(copied)} of {len(names)} room(s); the destination holds {len(copied) - len(missing)} of them"
        f" and {len(in_target)} in all; {len(copied) - len(differing)} match their originals' digests\n"
    )
    problems = []
    if differing or missing:
        problems.append(f"differ from their originals: {listed(sorted({*differing, *missing}))}")
    if unreadable:
        problems.append(
            f"{len(unreadable)} room(s) could not be read and were not copied: see `moviematch storage check`"
        )
    if problems:
        raise CommandError("; ".join(problems))


async def differing_copies(target: Storage, digests: dict[str, str]) -> list[str]:
    """The rooms of ``digests`` (name -> the original's digest) whose copy in ``target`` is not
    there or not the same, in name order."""
    differing = []
    for name, digest in progress(sorted(digests.items()), len(digests), "verify"):
        stored = await target.get_room(name)
        if stored is None or stored.digest() != digest:
            differing.append(name)
    return differing
