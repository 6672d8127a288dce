"""``moviematch rooms list | show NAME | delete NAME`` (NAME: a room's name or its join code)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO, Any

from server.rooms.join_codes import room_named
from storage import SerializedRoom, Storage
from storage.summary import RoomSummary

from .access import CommandError, delete_room

COLUMNS = ("NAME", "CODE", "CREATED", "LAST OPENED", "MEMBERS", "RATINGS", "MATCHES", "FILMS", "SIZE")


async def list_rooms(storage: Storage, out: IO[str], *, as_json: bool) -> None:
    summaries = sorted(await storage.list_summaries(), key=lambda summary: (summary.name.casefold(), summary.name))
    if as_json:
        json.dump([summary.model_dump(mode="json", by_alias=True) for summary in summaries], out, indent=2)
        out.write("\n")
    else:
        rows = [COLUMNS, *(_row(summary) for summary in summaries)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
        for row in rows:
            # The name left-aligned, the figures right-aligned.
            cells = [row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
            out.write("  ".join(cells).rstrip() + "\n")
    unreadable = storage.unreadable_rooms()
    if unreadable:
        raise CommandError(f"{len(unreadable)} stored room(s) could not be read: see `moviematch storage check`")


def _row(summary: RoomSummary) -> tuple[str, ...]:
    return (
        printable(summary.name),
        summary.join_code or "-",
        when(summary.created_at),
        when(summary.opened_at),
        str(summary.members),
        str(summary.ratings),
        str(summary.matches),
        "-" if summary.films is None else str(summary.films),
        size(summary.size),
    )


async def show_room(storage: Storage, name: str, out: IO[str], *, as_json: bool) -> None:
    room = await _stored(storage, name)
    if as_json:
        json.dump(public_form(room), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    ratings = [rating for triples in room.ratings.values() for _, rating, _ in triples]
    lines = [
        ("name", printable(room.room_name)),
        ("code", room.join_code or "- (given when next opened)"),
        ("type", f"{room.room_type} (a match at {room.match_threshold} likes)"),
        ("created", when(room.created_at) + f" by {printable(room.creator_plex_username) or '?'}"),
        ("last opened", when(room.opened_at)),
        ("password", "yes" if room.password_hash else "no"),
        ("order", room.sort_order or room.sort),
        ("options", ", ".join(room.options) or "-"),
        ("filters", "; ".join(f"{f.key} {f.operator} {','.join(f.value)}" for f in room.filters) or "-"),
        ("libraries", ", ".join(room.libraries) or "all"),
        ("films", "not fixed yet" if room.media_ids is None else str(len(room.media_ids))),
        ("ratings", f"{len(ratings)} ({ratings.count('like')} like, {ratings.count('dislike')} dislike)"),
        ("members", str(len(room.members))),
        *(
            (f"  {printable(member)}", f"joined {when_ms(info.joined_at)}, rated {room.user_progress.get(member, 0)}")
            for member, info in sorted(room.members.items())
        ),
        ("matches", str(len(room.matches))),
        *((f"  {printable(media_id)}", when_ms(at)) for media_id, at in sorted(room.matches.items(), key=_second)),
    ]
    width = max(len(label) for label, _ in lines)
    out.writelines(f"{label.ljust(width)}  {value}\n" for label, value in lines)


def _second(pair: tuple[str, int]) -> int:
    return pair[1]


def public_form(room: SerializedRoom) -> dict[str, Any]:
    """The room as stored, without its secrets (the password hash, members' token and seat code
    hashes) and with the length of its deck instead of the deck."""
    data = room.to_dict()
    data["password"] = data.pop("passwordHash") is not None
    for member in data["members"].values():
        for secret in ("tokenHash", "offerHash", "offerUntil"):
            member.pop(secret, None)
    ids = data.pop("mediaIds")
    data["films"] = None if ids is None else len(ids)
    return data


async def delete(storage: Storage, name: str, out: IO[str]) -> None:
    name = await room_named(storage, name)
    if not await delete_room(storage, name):
        raise CommandError(f"no room named {printable(name)}")
    out.write(f"deleted room {printable(name)}\n")


async def _stored(storage: Storage, name: str) -> SerializedRoom:
    room = await storage.get_room(await room_named(storage, name))
    if room is None:
        raise CommandError(f"no room named {printable(name)}")
    return room


def printable(text: str) -> str:
    """Names are chosen by users: anything a terminal would act on is shown escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def when_ms(epoch_ms: int) -> str:
    return when(datetime.fromtimestamp(epoch_ms / 1000, UTC))


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
