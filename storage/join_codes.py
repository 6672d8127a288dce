"""The join-code index of backends that keep it in the process (memory, and one file directory)."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import JoinCodeTaken
from .keys import room_key


class JoinCodeIndex:
    """Join code -> room name, and each room's code; a code names at most one room."""

    def __init__(self, rooms: Iterable[tuple[str, str]] = ()) -> None:
        self._names: dict[str, str] = {}  # code -> room name
        self._codes: dict[str, str] = {}  # room key -> code
        for code, room_name in rooms:
            self._names[code] = room_name
            self._codes[room_key(room_name)] = code

    def room_of(self, code: str) -> str | None:
        return self._names.get(code)

    def claim(self, room_name: str, code: str | None, operation: str) -> None:
        """Record ``code`` as the room's (None: it has none), freeing any other code it had; raises
        ``JoinCodeTaken``, changing nothing, when another room has ``code``."""
        key = room_key(room_name)
        if code is not None:
            holder = self._names.get(code)
            if holder is not None and room_key(holder) != key:
                raise JoinCodeTaken(operation, repr(room_name), code)
        self.release(room_name)
        if code is not None:
            self._names[code] = room_name
            self._codes[key] = code

    def release(self, room_name: str) -> None:
        code = self._codes.pop(room_key(room_name), None)
        if code is not None:
            self._names.pop(code, None)
