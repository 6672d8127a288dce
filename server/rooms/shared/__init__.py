"""Rooms that several server processes serve together, through Redis (see ``changes.py``)."""

from .changes import SharedChanges
from .live import Live, LiveRoom
from .memory import MemoryHub, MemoryLive
from .redis import RedisLive

__all__ = ["Live", "LiveRoom", "MemoryHub", "MemoryLive", "RedisLive", "SharedChanges"]
