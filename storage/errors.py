"""The one error type every storage backend raises."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed.

    ``operation`` names what was attempted (``save_room``, ``get_room`` ...), ``target`` the room,
    file or URL it concerned; the underlying exception is chained as ``__cause__``.
    """

    def __init__(self, operation: str, target: str, reason: str) -> None:
        self.operation = operation
        self.target = target
        self.reason = reason
        super().__init__(f"{operation} failed for {target}: {reason}")


class UnreadableRoom(StorageError):
    """A room is stored but cannot be read: damaged, not a room, or of a newer schema version.

    Unlike a plain ``StorageError`` (the backend is unavailable), retrying does not help: the room
    stays unreadable until it is repaired, replaced or deleted. ``location`` is its file or key.
    """

    def __init__(self, operation: str, target: str, reason: str, *, location: str, room_name: str | None) -> None:
        self.location = location
        self.room_name = room_name
        super().__init__(operation, target, reason)


class JoinCodeTaken(StorageError):
    """Another stored room has the join code a room was to be stored with: the caller picks another.

    Not an outage (the storage answered), so callers handle it before ``StorageError``.
    """

    def __init__(self, operation: str, target: str, code: str) -> None:
        self.code = code
        super().__init__(operation, target, "another room has this join code")
