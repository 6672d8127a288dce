"""Persistent rooms behind one small interface, with memory, JSON-file and Redis backends."""

from .base import Storage
from .errors import StorageError
from .factory import create_storage, storage_url
from .keys import readable_id, room_key
from .memory import MemoryStorage
from .passwords import hash_password, verify_password
from .room import Filter, Member, Rating, RatingValue, SerializedRoom

__all__ = [
    "Filter",
    "Member",
    "MemoryStorage",
    "Rating",
    "RatingValue",
    "SerializedRoom",
    "Storage",
    "StorageError",
    "create_storage",
    "hash_password",
    "readable_id",
    "room_key",
    "storage_url",
    "verify_password",
]
