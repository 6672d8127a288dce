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
