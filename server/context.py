"""What every request handler can reach: settings, storage, media, rooms and sign-in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from server.config import Settings
from server.limits import Guards
from server.metrics import Metrics
from server.providers.combined import CombinedProvider
from server.providers.jellyfin_sign_in import JellyfinSignIn
from server.rooms.registry import RoomRegistry
from server.user import User
from storage import Storage


class Departing(Protocol):
    def going_away(self) -> None: ...


# Verifies a Plex sign-in (token, client id) and returns the user, or raises ProtocolError.
PlexSignIn = Callable[[str, str], Awaitable[User]]


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    provider: CombinedProvider
    registry: RoomRegistry
    plex_sign_in: PlexSignIn | None = None
    jellyfin_sign_in: JellyfinSignIn | None = None
    connections: set[Departing] = field(default_factory=set)
    metrics: Metrics = field(default_factory=Metrics)
    guards: Guards = field(init=False)
    _none_left: anyio.Event | None = None

    def __post_init__(self) -> None:
        self.guards = Guards(self.settings)

    def connected(self, connection: Departing) -> None:
        self.connections.add(connection)

    def disconnected(self, connection: Departing) -> None:
        self.connections.discard(connection)
        if not self.connections and self._none_left is not None:
            self._none_left.set()

    async def say_goodbye(self, grace: float = 1.0) -> None:
        """Ask every connection to close with "going away", and give them a moment to do it."""
        self._none_left = anyio.Event()
        if not self.connections:
            return
        for connection in list(self.connections):
            connection.going_away()
        with anyio.move_on_after(grace):
            await self._none_left.wait()
