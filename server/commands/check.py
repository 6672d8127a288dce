"""``moviematch storage check``: read every stored room, report the ones that cannot be read."""

from __future__ import annotations

from typing import IO

from storage import Storage

from .access import CommandError
from .rooms import printable


async def check(storage: Storage, out: IO[str]) -> None:
    stored = len(await storage.list_room_names())
    unreadable = await storage.check()
    for room in unreadable:
        named = "" if room.room_name is None else f" (room {printable(room.room_name)})"
        out.write(f"{room.location}{named}: {room.reason}\n")
    out.write(f"{stored} room(s) stored, {len(unreadable)} unreadable\n")
    if unreadable:
        raise CommandError(f"{len(unreadable)} stored room(s) cannot be read")
