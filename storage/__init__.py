"""Persistent rooms behind one small interface, with memory, JSON-file and Redis backends."""

from .base import Storage
from .errors import StorageError, UnreadableRoom
from .factory import create_storage, storage_url
from .keys import readable_id, room_key
from .memory import MemoryStorage
from .passwords import hash_password, verify_password
from .room import Filter, Member, Pick, Rating, RatingValue, SerializedRoom, Unwatched
from .summary import RoomSummary, Unreadable

__all__ = [
    "Filter",
    "Member",
    "MemoryStorage",
    "Pick",
    "Rating",
    "RatingValue",
    "RoomSummary",
    "SerializedRoom",
    "Storage",
    "StorageError",
    "Unreadable",
    "UnreadableRoom",
    "Unwatched",
    "create_storage",
    "hash_password",
    "readable_id",
    "room_key",
    "storage_url",
    "verify_password",
]
