"""What every request handler can reach: settings, storage, media, rooms and sign-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.config import Settings
from server.providers import MediaProvider
from server.rooms.registry import RoomRegistry
from server.rooms.room import User
from storage import Storage

# Verifies a Plex sign-in (token, client id) and returns the user, or raises ProtocolError.
PlexSignIn = Callable[[str, str], Awaitable[User]]


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    provider: MediaProvider
    registry: RoomRegistry
    plex_sign_in: PlexSignIn | None = None
    connections: set[object] = field(default_factory=set)
