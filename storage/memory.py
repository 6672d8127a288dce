"""In-process storage for tests and throwaway servers: nothing survives the process."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from .base import Storage, list_name
from .join_codes import JoinCodeIndex
from .keys import room_key
from .room import SerializedRoom


class MemoryStorage(Storage):
    def __init__(self) -> None:
        super().__init__()
        self._rooms: dict[str, SerializedRoom] = {}
        self._join_codes = JoinCodeIndex()
        self._lists: dict[tuple[str, str], dict[str, str]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryStorage:
        return cls()

    # Copies in and out, so a caller mutating a room it passed or received never changes storage.
    async def save_room(self, room: SerializedRoom) -> None:
        self._join_codes.claim(room.room_name, room.join_code, "save_room")
        self._rooms[room.room_key] = room.copy_deep()

    async def get_room(self, room_name: str) -> SerializedRoom | None:
        room = self._rooms.get(room_key(room_name))
        return room.copy_deep() if room is not None else None

    async def delete_room(self, room_name: str) -> None:
        self._rooms.pop(room_key(room_name), None)
        self._join_codes.release(room_name)

    async def room_of_join_code(self, code: str) -> str | None:
        return self._join_codes.room_of(code)

    async def has_room(self, room_name: str) -> bool:
        return room_key(room_name) in self._rooms

    async def list_room_names(self) -> list[str]:
        return [room.room_name for room in self._rooms.values()]

    async def list_rooms(self) -> list[SerializedRoom]:
        return [room.copy_deep() for room in self._rooms.values()]

    async def read_list(self, identity: str, name: str) -> dict[str, str]:
        return dict(self._lists.get((identity, list_name(name)), {}))

    async def change_list(
        self, identity: str, name: str, *, put: Mapping[str, str] | None = None, drop: Collection[str] = ()
    ) -> None:
        entries = self._lists.setdefault((identity, list_name(name)), {})
        entries.update(put or {})
        for key in drop:
            entries.pop(key, None)
        if not entries:
            del self._lists[identity, name]

    def size(self) -> int:
        return len(self._rooms)

    def clear(self) -> None:
        self._rooms.clear()
        self._join_codes = JoinCodeIndex()
